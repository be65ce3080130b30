/**
 * Redis as the shared KV-block index of several EPP replicas: a single-replica Deployment (the index is
 * a cache rebuilt from KV events, so no persistence), a Service, and the password from a Secret
 * reference (never a literal). Runs under the Pod Security "restricted" profile.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { imagePullSecretRefs } from '../config/images.js';
import { RestrictedSecurity } from '../security/pod-security.js';

/** Props of {@link Redis}. */
export interface RedisProps {
  readonly name: string;
  readonly image: string;
  /** Secret holding the password. */
  readonly passwordSecret: { readonly name: string; readonly key: string };
  /** Pod labels (and Service selector). */
  readonly podLabels: Record<string, string>;
  /**
   * Requests (memory also limited).
   * @default { cpu: '500m', memory: '1Gi' }
   */
  readonly resources?: { readonly cpu: string; readonly memory: string };
  /**
   * Redis `maxmemory` in MiB (allkeys-lru eviction beyond it); must stay below the memory limit.
   * @default 768
   */
  readonly maxMemoryMiB?: number;
  /**
   * Service port.
   * @default 6379
   */
  readonly port?: number;
  /**
   * User id of the redis user in the image (999 in the official images).
   * @default 999
   */
  readonly runAsUser?: number;
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
  /**
   * Secrets the pod uses to pull its images (Secret names in the namespace).
   * @default [] (no imagePullSecrets field)
   */
  readonly imagePullSecrets?: readonly string[];
}

/** Env var the password is loaded into inside the pod. */
export const RedisPasswordPodEnv = 'REDIS_PASSWORD';

function mebibytes(q: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti)?$/.exec(q);
  if (!m) return undefined;
  const f = { Ki: 1 / 1024, Mi: 1, Gi: 1024, Ti: 1024 * 1024 }[m[2] ?? 'Mi'] ?? 1;
  return m[2] === undefined ? Number(m[1]) / (1024 * 1024) : Number(m[1]) * f;
}

/** Redis Deployment + Service; `host` and `port` are what clients use. */
export class Redis extends Construct {
  readonly serviceName: string;
  readonly port: number;
  readonly deployment: k8s.KubeDeployment;
  readonly service: k8s.KubeService;

  constructor(scope: Construct, id: string, props: RedisProps) {
    super(scope, id);
    const resources = props.resources ?? { cpu: '500m', memory: '1Gi' };
    const maxMemoryMiB = props.maxMemoryMiB ?? 768;
    const limitMiB = mebibytes(resources.memory);
    if (limitMiB !== undefined && maxMemoryMiB >= limitMiB) {
      throw new Error(
        `Redis ${props.name}: maxMemoryMiB ${maxMemoryMiB} is not below the memory limit ${resources.memory} (${limitMiB} MiB); Redis would be OOM-killed before it evicts. Lower maxMemoryMiB to about 75% of the limit`,
      );
    }
    const pullSecrets = imagePullSecretRefs(props.imagePullSecrets, `Redis ${props.name}`);
    this.serviceName = props.name;
    this.port = props.port ?? 6379;
    const labels = { ...(props.labels ?? {}), ...props.podLabels };
    const security = RestrictedSecurity.forUser(props.runAsUser ?? 999);
    const passwordEnv: k8s.EnvVar[] = [
      { name: RedisPasswordPodEnv, valueFrom: { secretKeyRef: { name: props.passwordSecret.name, key: props.passwordSecret.key } } },
      // redis-cli reads REDISCLI_AUTH, so the probe never puts the password on a command line.
      { name: 'REDISCLI_AUTH', valueFrom: { secretKeyRef: { name: props.passwordSecret.name, key: props.passwordSecret.key } } },
    ];
    const probe = (periodSeconds: number): k8s.Probe => ({
      exec: { command: ['sh', '-c', '[ "$(redis-cli -p ' + this.port + ' ping)" = PONG ]'] },
      periodSeconds,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });
    this.deployment = new k8s.KubeDeployment(this, 'Deployment', {
      metadata: { name: props.name, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: { ...props.podLabels } },
        strategy: { type: 'Recreate' },
        template: {
          metadata: { labels: { ...props.podLabels }, annotations: { 'sidecar.istio.io/inject': 'false' } },
          spec: {
            automountServiceAccountToken: false,
            ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
            securityContext: security.pod(),
            containers: [
              {
                name: 'redis',
                image: props.image,
                imagePullPolicy: 'IfNotPresent',
                command: ['redis-server'],
                args: [
                  '--port',
                  String(this.port),
                  '--requirepass',
                  `$(${RedisPasswordPodEnv})`,
                  '--maxmemory',
                  `${maxMemoryMiB}mb`,
                  '--maxmemory-policy',
                  'allkeys-lru',
                  '--save',
                  '',
                  '--appendonly',
                  'no',
                  '--dir',
                  '/data',
                ],
                env: passwordEnv,
                ports: [{ name: 'redis', containerPort: this.port, protocol: 'TCP' }],
                resources: {
                  requests: { cpu: k8s.Quantity.fromString(resources.cpu), memory: k8s.Quantity.fromString(resources.memory) },
                  limits: { memory: k8s.Quantity.fromString(resources.memory) },
                },
                readinessProbe: probe(5),
                livenessProbe: probe(10),
                securityContext: security.container(),
                volumeMounts: [{ name: 'data', mountPath: '/data' }],
              },
            ],
            volumes: [{ name: 'data', emptyDir: { sizeLimit: k8s.Quantity.fromString('1Gi') } }],
          },
        },
      },
    });
    this.service = new k8s.KubeService(this, 'Service', {
      metadata: { name: props.name, labels },
      spec: {
        type: 'ClusterIP',
        selector: { ...props.podLabels },
        ports: [{ name: 'redis', port: this.port, targetPort: k8s.IntOrString.fromString('redis'), protocol: 'TCP', appProtocol: 'redis' }],
      },
    });
  }
}
