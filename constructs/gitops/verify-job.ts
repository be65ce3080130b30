/**
 * `kvroute-epp verify` as an Argo CD PostSync hook Job: after every sync of dist/, a shared-prefix
 * workload goes through the gateway and the prefix-cache routing is checked against vLLM's and the
 * EPP's counters in Prometheus (epp/src/cli/verify.ts). The Job fails (and Argo CD marks the sync's
 * hook failed) when the check fails. The previous run's Job is deleted when the next sync creates
 * one, so the last result stays readable (`kubectl logs job/<name>-verify`).
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { imagePullSecretRefs } from '../config/images.js';
import { RestrictedSecurity } from '../security/pod-security.js';
import { EppContainerCommand } from '../epp/endpoint-picker.js';

/** Argo CD annotations of a PostSync hook that replaces the previous run. */
export const PostSyncHookAnnotations = {
  'argocd.argoproj.io/hook': 'PostSync',
  'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation',
} as const;

/** Props of {@link VerifyJob}. */
export interface VerifyJobProps {
  /** Job name. */
  readonly name: string;
  /** The EPP image (it carries the `kvroute-epp` CLI). */
  readonly image: string;
  /** OpenAI-compatible base URL of the gateway, e.g. `http://kvroute-gateway-istio.llm-d.svc:80`. */
  readonly gatewayUrl: string;
  /** Prometheus HTTP API base URL that scrapes the vLLM pods and the EPP. */
  readonly prometheusUrl: string;
  /** Served model name. */
  readonly model: string;
  /**
   * Chat sessions of the workload.
   * @default 24
   */
  readonly sessions?: number;
  /**
   * Turns per session.
   * @default 3
   */
  readonly turns?: number;
  /**
   * Seconds the Job may run before Kubernetes stops it (and it counts as failed).
   * @default 900
   */
  readonly activeDeadlineSeconds?: number;
  /**
   * Image pull secrets.
   * @default []
   */
  readonly imagePullSecrets?: readonly string[];
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

function positiveInt(what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`VerifyJob ${what}: ${v} must be an integer ≥ ${min}`);
}

function httpUrl(name: string, what: string, v: string): void {
  if (!/^https?:\/\/[^\s/]+/.test(v)) throw new Error(`VerifyJob ${name}: ${what} ${JSON.stringify(v)} is not an http(s) URL; use e.g. http://host.namespace.svc:port`);
}

export class VerifyJob extends Construct {
  readonly job: k8s.KubeJob;
  constructor(scope: Construct, id: string, props: VerifyJobProps) {
    super(scope, id);
    httpUrl(props.name, 'gatewayUrl', props.gatewayUrl);
    httpUrl(props.name, 'prometheusUrl', props.prometheusUrl);
    const sessions = props.sessions ?? 24;
    const turns = props.turns ?? 3;
    const deadline = props.activeDeadlineSeconds ?? 900;
    positiveInt(`${props.name} sessions`, sessions, 1);
    positiveInt(`${props.name} turns`, turns, 1);
    positiveInt(`${props.name} activeDeadlineSeconds`, deadline, 60);
    const security = RestrictedSecurity.forUser(65532);
    const pullSecrets = imagePullSecretRefs(props.imagePullSecrets ?? [], `VerifyJob ${props.name}`);
    const labels = { ...(props.labels ?? {}), 'app.kubernetes.io/component': 'verify' };
    this.job = new k8s.KubeJob(this, 'Job', {
      metadata: { name: props.name, labels, annotations: { ...PostSyncHookAnnotations } },
      spec: {
        backoffLimit: 0,
        activeDeadlineSeconds: deadline,
        template: {
          metadata: { labels, annotations: { 'sidecar.istio.io/inject': 'false' } },
          spec: {
            restartPolicy: 'Never',
            ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
            securityContext: security.pod(),
            containers: [
              {
                name: 'verify',
                image: props.image,
                imagePullPolicy: 'IfNotPresent',
                command: [...EppContainerCommand],
                args: [
                  'verify',
                  '--gateway', props.gatewayUrl,
                  '--model', props.model,
                  '--prometheus', props.prometheusUrl,
                  '--sessions', String(sessions),
                  '--turns', String(turns),
                ],
                resources: {
                  requests: { cpu: k8s.Quantity.fromString('100m'), memory: k8s.Quantity.fromString('256Mi') },
                  limits: { memory: k8s.Quantity.fromString('256Mi') },
                },
                securityContext: security.container(),
              },
            ],
          },
        },
      },
    });
  }
}
