/**
 * The kvroute EPP: ConfigMap (EPP config built with the EPP's schema), Deployment, Service with the
 * ext_proc, health, metrics and ZMQ ports, PodDisruptionBudget, and its RBAC.
 */
import { createHash } from 'node:crypto';
import { EppConfigPath, EppPortNames, EppPorts, EppServingV8Flags, type EppConfig, HfTokenEnv, RedisPasswordEnv } from '@kvroute/epp/contract';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { imagePullSecretRefs } from '../config/images.js';
import { RestrictedSecurity } from '../security/pod-security.js';
import { renderEppConfig } from './epp-config.js';
import { EppRbac } from './epp-rbac.js';

/** A CPU / memory pair. */
export interface ResourcePair {
  readonly cpu: string;
  readonly memory: string;
}

/** Props of {@link EndpointPicker}. */
export interface EndpointPickerProps {
  /** Name of the Deployment, Service, ServiceAccount, Role, RoleBinding and PDB. */
  readonly name: string;
  readonly configMapName: string;
  readonly image: string;
  readonly eppConfig: EppConfig;
  /** Pod labels (and Service selector). */
  readonly podLabels: Record<string, string>;
  /**
   * Replicas.
   * @default 1
   */
  readonly replicas?: number;
  /**
   * Requests (memory also limited).
   * @default { cpu: '2', memory: '2Gi' }
   */
  readonly resources?: ResourcePair;
  /**
   * Secret with the Hugging Face token (tokenizer download).
   * @default - no token (public tokenizers only)
   */
  readonly hfTokenSecret?: { readonly name: string; readonly key: string };
  /**
   * Secret with the Redis password (redis index backend).
   * @default - none
   */
  readonly redisPasswordSecret?: { readonly name: string; readonly key: string };
  /**
   * Non-root user the container runs as.
   * @default 65532
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

/** Path of the EPP's CLI in the image (epp/Dockerfile's ENTRYPOINT runs it with node). */
export const EppImageCli = '/app/epp/bin/kvroute-epp.js';

/**
 * The container command: node with the serving V8 flags on its command line (NODE_OPTIONS refuses
 * them), running the CLI — the image's ENTRYPOINT, spelled out so the flags are visible in the manifest.
 */
export const EppContainerCommand: readonly string[] = ['node', ...EppServingV8Flags, EppImageCli];

/** Key of the config file in the ConfigMap (file name of EppConfigPath). */
export const EppConfigKey = EppConfigPath.slice(EppConfigPath.lastIndexOf('/') + 1);
const EppConfigDir = EppConfigPath.slice(0, EppConfigPath.lastIndexOf('/'));

/** The EPP as a Deployment behind a Service; `serviceName` is what gateways and vLLM pods address. */
export class EndpointPicker extends Construct {
  readonly serviceName: string;
  readonly configMap: k8s.KubeConfigMap;
  readonly deployment: k8s.KubeDeployment;
  readonly service: k8s.KubeService;
  readonly pdb: k8s.KubePodDisruptionBudget;
  readonly rbac: EppRbac;

  constructor(scope: Construct, id: string, props: EndpointPickerProps) {
    super(scope, id);
    const replicas = props.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 1) {
      throw new Error(`EndpointPicker ${props.name}: replicas ${replicas} must be ≥ 1; the gateway cannot route without an EPP`);
    }
    const c = props.eppConfig;
    if (c.server.grpcPort !== EppPorts.grpc || c.server.healthPort !== EppPorts.grpcHealth || c.server.httpPort !== EppPorts.http) {
      throw new Error(
        `EndpointPicker ${props.name}: eppConfig.server ports (${c.server.grpcPort}/${c.server.healthPort}/${c.server.httpPort}) differ from the contract's EppPorts (${EppPorts.grpc}/${EppPorts.grpcHealth}/${EppPorts.http}) that the Service, probes and policies use; build the config with the contract ports`,
      );
    }
    if (c.index.backend === 'redis' && !props.redisPasswordSecret) {
      throw new Error(`EndpointPicker ${props.name}: eppConfig.index.backend is "redis" but no redisPasswordSecret was given; pass the Secret that holds the Redis password`);
    }
    const pullSecrets = imagePullSecretRefs(props.imagePullSecrets, `EndpointPicker ${props.name}`);
    const labels = { ...(props.labels ?? {}), ...props.podLabels };
    const resources = props.resources ?? { cpu: '2', memory: '2Gi' };
    const security = RestrictedSecurity.forUser(props.runAsUser ?? 65532);
    this.serviceName = props.name;
    this.rbac = new EppRbac(this, 'Rbac', { name: props.name, labels });

    const configText = renderEppConfig(c);
    this.configMap = new k8s.KubeConfigMap(this, 'Config', {
      metadata: { name: props.configMapName, labels },
      data: { [EppConfigKey]: configText },
    });
    const configHash = createHash('sha256').update(configText).digest('hex').slice(0, 16);

    const ports = [
      { name: EppPortNames.grpc, port: EppPorts.grpc, appProtocol: 'kubernetes.io/h2c' },
      { name: EppPortNames.grpcHealth, port: EppPorts.grpcHealth, appProtocol: 'kubernetes.io/h2c' },
      { name: EppPortNames.http, port: EppPorts.http, appProtocol: 'http' },
      ...(c.events.mode === 'bind' ? [{ name: EppPortNames.zmq, port: EppPorts.zmq, appProtocol: 'tcp' }] : []),
    ];

    const env: k8s.EnvVar[] = [
      ...(props.hfTokenSecret ? [{ name: HfTokenEnv, valueFrom: { secretKeyRef: { name: props.hfTokenSecret.name, key: props.hfTokenSecret.key, optional: true } } }] : []),
      ...(props.redisPasswordSecret
        ? [{ name: c.index.backend === 'redis' ? c.index.passwordEnv : RedisPasswordEnv, valueFrom: { secretKeyRef: { name: props.redisPasswordSecret.name, key: props.redisPasswordSecret.key } } }]
        : []),
    ];

    const grpcProbe = (service: string, periodSeconds: number, failureThreshold: number): k8s.Probe => ({
      grpc: { port: EppPorts.grpcHealth, service },
      periodSeconds,
      failureThreshold,
      timeoutSeconds: 2,
    });

    const httpProbe = (path: string, periodSeconds: number, failureThreshold: number): k8s.Probe => ({
      httpGet: { path, port: k8s.IntOrString.fromString(EppPortNames.http) },
      periodSeconds,
      failureThreshold,
      timeoutSeconds: 2,
    });

    this.deployment = new k8s.KubeDeployment(this, 'Deployment', {
      metadata: { name: props.name, labels },
      spec: {
        replicas,
        selector: { matchLabels: { ...props.podLabels } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(1), maxUnavailable: k8s.IntOrString.fromNumber(0) } },
        template: {
          metadata: {
            labels: { ...props.podLabels },
            annotations: { 'sidecar.istio.io/inject': 'false', 'kvroute.dev/config-sha256': configHash },
          },
          spec: {
            serviceAccountName: this.rbac.serviceAccountName,
            ...(pullSecrets ? { imagePullSecrets: pullSecrets } : {}),
            terminationGracePeriodSeconds: 130,
            securityContext: security.pod(),
            ...(replicas > 1
              ? {
                  affinity: {
                    podAntiAffinity: {
                      preferredDuringSchedulingIgnoredDuringExecution: [
                        { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { ...props.podLabels } } } },
                      ],
                    },
                  },
                }
              : {}),
            containers: [
              {
                name: 'epp',
                image: props.image,
                imagePullPolicy: 'IfNotPresent',
                command: [...EppContainerCommand],
                args: ['serve', '--config', EppConfigPath],
                env,
                ports: ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
                resources: {
                  requests: { cpu: k8s.Quantity.fromString(resources.cpu), memory: k8s.Quantity.fromString(resources.memory) },
                  limits: { memory: k8s.Quantity.fromString(resources.memory) },
                },
                // Readiness = gRPC health (SERVING once the pool is synced and the tokenizer loaded);
                // liveness = process alive (/healthz), so a slow API server or hub never restarts the EPP.
                startupProbe: httpProbe('/healthz', 5, 24),
                readinessProbe: grpcProbe('readiness', 5, 3),
                livenessProbe: httpProbe('/healthz', 10, 3),
                securityContext: security.container(),
                volumeMounts: [
                  { name: 'config', mountPath: EppConfigDir, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: props.configMapName } },
              { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('1Gi') } },
            ],
          },
        },
      },
    });

    this.service = new k8s.KubeService(this, 'Service', {
      metadata: { name: props.name, labels },
      spec: {
        type: 'ClusterIP',
        selector: { ...props.podLabels },
        ports: ports.map((p) => ({ name: p.name, port: p.port, targetPort: k8s.IntOrString.fromString(p.name), protocol: 'TCP', appProtocol: p.appProtocol })),
      },
    });

    this.pdb = new k8s.KubePodDisruptionBudget(this, 'Pdb', {
      metadata: { name: props.name, labels },
      spec: {
        ...(replicas > 1 ? { minAvailable: k8s.IntOrString.fromNumber(1) } : { maxUnavailable: k8s.IntOrString.fromNumber(1) }),
        selector: { matchLabels: { ...props.podLabels } },
      },
    });
  }
}
