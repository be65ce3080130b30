/** A Deployment of vLLM model-server pods of one role. */
import { ApiObjectMetadata } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { imagePullSecretRefs } from '../config/images.js';
import type { Accelerator } from './accelerator.js';
import { toK8sContainer } from './container-spec.js';
import type { VllmServerParts } from './vllm-server.js';

/** Props of {@link ModelServerDeployment}. */
export interface ModelServerDeploymentProps {
  readonly name: string;
  readonly replicas: number;
  /** Pod labels; the selector uses all of them. */
  readonly podLabels: Record<string, string>;
  readonly server: VllmServerParts;
  readonly accelerator: Accelerator;
  readonly serviceAccountName: string;
  /**
   * Extra object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
  /**
   * Seconds a pod gets to finish in-flight requests on shutdown.
   * @default 120
   */
  readonly terminationGracePeriodSeconds?: number;
  /**
   * Secrets the pod uses to pull its images (Secret names in the namespace).
   * @default [] (no imagePullSecrets field)
   */
  readonly imagePullSecrets?: readonly string[];
}

/** vLLM pods as a Deployment: GPUs requested = limited, node affinity, tolerations, no surge (GPUs are scarce). */
export class ModelServerDeployment extends Construct {
  readonly deployment: k8s.KubeDeployment;
  readonly name: string;

  constructor(scope: Construct, id: string, props: ModelServerDeploymentProps) {
    super(scope, id);
    if (!Number.isInteger(props.replicas) || props.replicas < 0) {
      throw new Error(`ModelServerDeployment ${props.name}: replicas ${props.replicas} must be a whole number ≥ 0`);
    }
    const pullSecrets = imagePullSecretRefs(props.imagePullSecrets, `ModelServerDeployment ${props.name}`);
    this.name = props.name;
    const metadata: ApiObjectMetadata = { name: props.name, labels: { ...(props.labels ?? {}), ...props.podLabels } };
    this.deployment = new k8s.KubeDeployment(this, 'Resource', {
      metadata,
      spec: {
        replicas: props.replicas,
        selector: { matchLabels: { ...props.podLabels } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(0), maxUnavailable: k8s.IntOrString.fromNumber(1) } },
        template: {
          metadata: { labels: { ...props.podLabels } },
          spec: {
            serviceAccountName: props.serviceAccountName,
            automountServiceAccountToken: false,
            ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
            terminationGracePeriodSeconds: props.terminationGracePeriodSeconds ?? 120,
            affinity: props.accelerator.toAffinity(),
            tolerations: props.accelerator.toTolerations(),
            ...(props.server.initContainers.length > 0 ? { initContainers: props.server.initContainers.map(toK8sContainer) } : {}),
            containers: props.server.containers.map(toK8sContainer),
            volumes: props.server.volumes,
          },
        },
      },
    });
  }
}
