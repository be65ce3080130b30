/**
 * The BaseConfig ConfigMap of a ModelService: the llm-d operator renders each child Deployment from
 * the template under `decodeDeployment` / `prefillDeployment` and merges the ModelService's containers
 * into it by name. The CRD's container type has no ports, probes, volume mounts or tolerations, so
 * those live here: the operator-built pods then get the same ports, probes, /dev/shm, model cache and
 * GPU tolerations as the Deployment mode.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { stringify } from 'yaml';
import type { Accelerator } from './accelerator.js';
import { imagePullSecretRefs } from '../config/images.js';
import { toK8sContainer } from './container-spec.js';
import type { VllmServerParts } from './vllm-server.js';

/** One role's pod parts. */
export interface BaseConfigRole {
  readonly server: VllmServerParts;
  readonly accelerator: Accelerator;
}

/** Props of {@link ModelServiceBaseConfig}. */
export interface ModelServiceBaseConfigProps {
  readonly name: string;
  readonly decode: BaseConfigRole;
  /**
   * Prefill role.
   * @default - no prefillDeployment template
   */
  readonly prefill?: BaseConfigRole;
  /**
   * Seconds a pod gets to finish in-flight requests on shutdown.
   * @default 120
   */
  readonly terminationGracePeriodSeconds?: number;
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
  /**
   * Secrets the operator-built pods use to pull their images (the ModelService CRD has no field for
   * them, so they go into the Deployment templates).
   * @default [] (no imagePullSecrets field)
   */
  readonly imagePullSecrets?: readonly string[];
}

/** Container fields the CRD cannot carry (the rest comes from the ModelService). */
const BaseContainerFields = ['name', 'ports', 'startupProbe', 'readinessProbe', 'livenessProbe', 'volumeMounts', 'securityContext'] as const;

/** The partial Deployment (YAML) the operator starts from for one role. */
export function baseDeploymentTemplate(role: BaseConfigRole, terminationGracePeriodSeconds: number, imagePullSecrets?: readonly { name: string }[]): string {
  const s = role.server;
  // Native sidecars become regular containers in ModelService mode (see model-service.ts).
  const containers = [...s.containers, ...s.initContainers.filter((c) => c.restartPolicy === 'Always')].map((c) => {
    const full = k8s.toJson_Container(toK8sContainer(c)) ?? {};
    return Object.fromEntries(BaseContainerFields.filter((f) => full[f] !== undefined && !(Array.isArray(full[f]) && full[f].length === 0)).map((f) => [f, full[f]]));
  });
  const template = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    spec: {
      template: {
        spec: {
          automountServiceAccountToken: false,
          ...(imagePullSecrets ? { imagePullSecrets } : {}),
          terminationGracePeriodSeconds,
          tolerations: role.accelerator.toTolerations().map((t) => k8s.toJson_Toleration(t)),
          containers,
          volumes: s.volumes.map((v) => k8s.toJson_Volume(v)),
        },
      },
    },
  };
  const text = stringify(template, { lineWidth: 0 });
  if (text.includes('{{')) {
    throw new Error('ModelServiceBaseConfig: the template contains "{{", which the operator would treat as a Go template; remove it from the container spec');
  }
  return text;
}

/** The BaseConfig ConfigMap; reference it from the ModelService by `name`. */
export class ModelServiceBaseConfig extends Construct {
  readonly name: string;
  readonly configMap: k8s.KubeConfigMap;
  constructor(scope: Construct, id: string, props: ModelServiceBaseConfigProps) {
    super(scope, id);
    this.name = props.name;
    const grace = props.terminationGracePeriodSeconds ?? 120;
    const pullSecrets = imagePullSecretRefs(props.imagePullSecrets, `ModelServiceBaseConfig ${props.name}`);
    this.configMap = new k8s.KubeConfigMap(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      data: {
        decodeDeployment: baseDeploymentTemplate(props.decode, grace, pullSecrets),
        ...(props.prefill ? { prefillDeployment: baseDeploymentTemplate(props.prefill, grace, pullSecrets) } : {}),
      },
    });
  }
}
