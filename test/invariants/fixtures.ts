/**
 * A small, hand-built, internally consistent deployment (one object of every kind the chart emits).
 * Invariant and schema tests start from it and break one thing at a time. Built independently of
 * constructs/ on purpose: it checks the checkers, not the chart.
 */
import { EppPortNames, EppPorts, Labels, VllmPorts } from '@kvroute/epp/contract';
import type { Manifest } from './model.js';

/** A Kubernetes object as plain JSON. */
export type Obj = Manifest;

export const NS = 'llm-d';
export const MODEL = 'meta-llama/Llama-3.2-1B';
const MODEL_LABEL = 'meta-llama-Llama-3.2-1B';
const restricted = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

export const eppLabels = { 'app.kubernetes.io/name': 'kvroute-epp', 'app.kubernetes.io/instance': 'kv' };
export const redisLabels = { 'app.kubernetes.io/name': 'redis', 'app.kubernetes.io/instance': 'kv' };
export const poolSelector = { [Labels.inferenceServing]: 'true', [Labels.model]: MODEL_LABEL };

/** The vLLM --kv-events-config JSON: connect to the EPP Service's ZMQ port, topic kv@$(POD_IP):8000@model. */
export function kvEventsJson(): string {
  return JSON.stringify({
    enable_kv_cache_events: true,
    publisher: 'zmq',
    endpoint: `tcp://kv-epp.${NS}.svc.cluster.local:${EppPorts.zmq}`,
    topic: `kv@$(POD_IP):${VllmPorts.serving}@${MODEL}`,
  });
}

function vllmContainer(role: 'decode' | 'prefill', port: number): Record<string, unknown> {
  return {
    name: 'vllm',
    image: 'vllm/vllm-openai:v0.11.0',
    command: ['vllm', 'serve', MODEL],
    args: [
      `--port=${port}`,
      '--served-model-name',
      MODEL,
      '--enable-prefix-caching',
      '--block-size=16',
      '--prefix-caching-hash-algo=sha256_cbor',
      '--kv-events-config',
      kvEventsJson(),
      '--kv-transfer-config',
      '{"kv_connector":"NixlConnector","kv_role":"kv_both"}',
    ],
    env: [
      { name: 'PYTHONHASHSEED', value: '42' },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf-token', key: 'token' } } },
      { name: 'VLLM_ROLE', value: role },
    ],
    ports: [{ name: 'vllm', containerPort: port, protocol: 'TCP' }],
    resources: {
      requests: { cpu: '4', memory: '16Gi', 'nvidia.com/gpu': '1' },
      limits: { memory: '16Gi', 'nvidia.com/gpu': '1' },
    },
    readinessProbe: { httpGet: { path: '/health', port: 'vllm' }, periodSeconds: 5 },
    startupProbe: { httpGet: { path: '/health', port: port }, failureThreshold: 120, periodSeconds: 10 },
    volumeMounts: [{ name: 'shm', mountPath: '/dev/shm' }],
  };
}

function modelServer(role: 'decode' | 'prefill'): Obj {
  const labels = { ...poolSelector, [Labels.role]: role };
  const containers: Record<string, unknown>[] = [vllmContainer(role, role === 'decode' ? VllmPorts.vllmBehindSidecar : VllmPorts.serving)];
  const initContainers: Record<string, unknown>[] =
    role === 'decode'
      ? [
          {
            name: 'routing-proxy',
            image: 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.2.0',
            args: [`--port=${VllmPorts.serving}`, `--vllm-port=${VllmPorts.vllmBehindSidecar}`, '--connector=nixlv2'],
            ports: [{ name: 'http', containerPort: VllmPorts.serving }],
            restartPolicy: 'Always',
            securityContext: restricted,
          },
        ]
      : [];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `kv-${role}`, namespace: NS, labels },
    spec: {
      replicas: role === 'decode' ? 3 : 2,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          ...(initContainers.length > 0 ? { initContainers } : {}),
          containers,
          volumes: [{ name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: '8Gi' } }],
          tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
        },
      },
    },
  };
}

export const eppConfigYaml = [
  'apiVersion: kvroute.dev/v1alpha1',
  'kind: EppConfig',
  `model: ${MODEL}`,
  'blockSize: 16',
  'hashAlgo: sha256_cbor',
  'hashSeed: "42"',
  'discovery:',
  '  mode: kubernetes',
  '  poolName: kv-pool',
  'index:',
  '  backend: redis',
  `  url: redis://kv-redis.${NS}.svc.cluster.local:6379`,
  '',
].join('\n');

/** Every object of a consistent InferencePool-mode deployment with P/D and Redis, plus one of each other kind. */
export function miniDeployment(): Obj[] {
  const objs: Obj[] = [
    modelServer('decode'),
    modelServer('prefill'),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'kv-epp-config', namespace: NS },
      data: { 'epp-config.yaml': eppConfigYaml },
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kv-epp', namespace: NS } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'kv-epp', namespace: NS },
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['inference.networking.k8s.io'], resources: ['inferencepools'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['inference.networking.x-k8s.io'], resources: ['inferenceobjectives'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'kv-epp', namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'kv-epp' },
      subjects: [{ kind: 'ServiceAccount', name: 'kv-epp', namespace: NS }],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'kv-epp', namespace: NS, labels: eppLabels },
      spec: {
        replicas: 2,
        selector: { matchLabels: eppLabels },
        template: {
          metadata: { labels: eppLabels },
          spec: {
            serviceAccountName: 'kv-epp',
            securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'epp',
                image: 'ghcr.io/kvroute/epp:0.1.0',
                args: ['serve', '--config', '/etc/kvroute/epp-config.yaml'],
                env: [{ name: 'KVROUTE_REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'redis-auth', key: 'password' } } }],
                ports: [
                  { name: EppPortNames.grpc, containerPort: EppPorts.grpc },
                  { name: EppPortNames.grpcHealth, containerPort: EppPorts.grpcHealth },
                  { name: EppPortNames.http, containerPort: EppPorts.http },
                  { name: EppPortNames.zmq, containerPort: EppPorts.zmq },
                ],
                readinessProbe: { grpc: { port: EppPorts.grpcHealth } },
                livenessProbe: { httpGet: { path: '/healthz', port: EppPortNames.http } },
                resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { memory: '1Gi' } },
                securityContext: restricted,
                volumeMounts: [{ name: 'config', mountPath: '/etc/kvroute' }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'kv-epp-config' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kv-epp', namespace: NS, labels: eppLabels },
      spec: {
        selector: eppLabels,
        ports: [
          { name: 'grpc', port: EppPorts.grpc, targetPort: EppPortNames.grpc, appProtocol: 'http2' },
          { name: 'grpc-health', port: EppPorts.grpcHealth, targetPort: EppPorts.grpcHealth },
          { name: 'metrics', port: EppPorts.http, targetPort: EppPortNames.http },
          { name: 'zmq', port: EppPorts.zmq, targetPort: EppPortNames.zmq },
        ],
      },
    },
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'kv-epp', namespace: NS },
      spec: { maxUnavailable: 1, selector: { matchLabels: eppLabels } },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'kv-redis', namespace: NS },
      spec: {
        serviceName: 'kv-redis',
        replicas: 1,
        selector: { matchLabels: redisLabels },
        template: {
          metadata: { labels: redisLabels },
          spec: {
            securityContext: { runAsNonRoot: true, runAsUser: 999, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'redis',
                image: 'redis:7.4-alpine',
                command: ['sh', '-c', 'exec redis-server --requirepass "$REDIS_PASSWORD"'],
                env: [{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'redis-auth', key: 'password' } } }],
                ports: [{ name: 'redis', containerPort: 6379 }],
                readinessProbe: { tcpSocket: { port: 'redis' } },
                resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '512Mi' } },
                securityContext: restricted,
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kv-redis', namespace: NS },
      spec: { selector: redisLabels, ports: [{ name: 'redis', port: 6379, targetPort: 'redis' }] },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'kv-redis', namespace: NS },
      spec: {
        podSelector: { matchLabels: redisLabels },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: eppLabels } }], ports: [{ port: 'redis', protocol: 'TCP' }] }],
      },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'kv-epp', namespace: NS },
      spec: {
        podSelector: { matchLabels: eppLabels },
        policyTypes: ['Ingress'],
        ingress: [
          {
            // vLLM Deployments (chart labels) and the ModelService operator's pods (its own label key)
            from: [{ podSelector: { matchLabels: { [Labels.inferenceServing]: 'true' } } }, { podSelector: { matchLabels: { 'llm-d.ai/inferenceServing': 'true' } } }],
            ports: [{ port: EppPortNames.zmq }],
          },
          { from: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'kv-gateway' } } }], ports: [{ port: EppPorts.grpc }] },
        ],
      },
    },
    {
      apiVersion: 'inference.networking.k8s.io/v1',
      kind: 'InferencePool',
      metadata: { name: 'kv-pool', namespace: NS },
      spec: {
        selector: { matchLabels: { ...poolSelector, [Labels.role]: 'decode' } },
        targetPorts: [{ number: VllmPorts.serving }],
        endpointPickerRef: { name: 'kv-epp', kind: 'Service', port: { number: EppPorts.grpc }, failureMode: 'FailClose' },
      },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'kv-gateway', namespace: NS },
      spec: { gatewayClassName: 'istio', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'kv-route', namespace: NS },
      spec: {
        parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kv-gateway' }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/v1' } }],
            backendRefs: [{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: 'kv-pool' }],
          },
        ],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1alpha3',
      kind: 'EnvoyFilter',
      metadata: { name: 'kv-ext-proc', namespace: NS },
      spec: {
        workloadSelector: { labels: { 'gateway.networking.k8s.io/gateway-name': 'kv-gateway' } },
        configPatches: [
          {
            applyTo: 'CLUSTER',
            match: { context: 'GATEWAY' },
            patch: {
              operation: 'ADD',
              value: {
                name: 'kv-original-dst',
                type: 'ORIGINAL_DST',
                lb_policy: 'CLUSTER_PROVIDED',
                connect_timeout: '1000s',
                original_dst_lb_config: { use_http_header: true, http_header_name: 'x-gateway-destination-endpoint' },
              },
            },
          },
          {
            applyTo: 'HTTP_ROUTE',
            match: { context: 'GATEWAY', routeConfiguration: { portNumber: 80, vhost: { name: '*:80' } } },
            patch: { operation: 'MERGE', value: { route: { cluster: 'kv-original-dst', timeout: '0s' } } },
          },
          {
            applyTo: 'HTTP_FILTER',
            match: { context: 'GATEWAY', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } } },
            patch: {
              operation: 'INSERT_BEFORE',
              value: {
                name: 'envoy.filters.http.ext_proc',
                typed_config: {
                  '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
                  grpc_service: { envoy_grpc: { cluster_name: `outbound|${EppPorts.grpc}||kv-epp.${NS}.svc.cluster.local` }, timeout: '10s' },
                  processing_mode: {
                    request_header_mode: 'SEND',
                    response_header_mode: 'SEND',
                    request_body_mode: 'FULL_DUPLEX_STREAMED',
                    response_body_mode: 'FULL_DUPLEX_STREAMED',
                    request_trailer_mode: 'SEND',
                    response_trailer_mode: 'SEND',
                  },
                },
              },
            },
          },
        ],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'kv-epp', namespace: NS },
      spec: { host: `kv-epp.${NS}.svc.cluster.local`, trafficPolicy: { tls: { mode: 'SIMPLE', insecureSkipVerify: true } } },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: { name: 'kv-vllm', namespace: NS },
      spec: { selector: { matchLabels: poolSelector }, podMetricsEndpoints: [{ port: 'vllm', path: '/metrics' }] },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: 'kv-epp', namespace: NS },
      spec: { selector: { matchLabels: eppLabels }, endpoints: [{ port: 'metrics', interval: '15s' }] },
    },
    {
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Application',
      metadata: { name: 'kv', namespace: 'argocd' },
      spec: {
        project: 'default',
        source: { repoURL: 'https://example.com/kvroute.git', targetRevision: 'main', path: 'dist', directory: { recurse: true } },
        destination: { server: 'https://kubernetes.default.svc', namespace: NS },
        syncPolicy: { automated: { prune: true, selfHeal: true }, syncOptions: ['CreateNamespace=true', 'ServerSideApply=true'] },
      },
    },
    {
      apiVersion: 'llm-d.ai/v1alpha1',
      kind: 'ModelService',
      metadata: { name: 'kv-ms', namespace: NS },
      spec: {
        modelArtifacts: { uri: `hf://${MODEL}`, authSecretName: 'hf-token', size: '20Gi' },
        routing: { modelName: MODEL, ports: [{ name: 'app', port: 8000 }] },
        decode: {
          replicas: 3,
          parallelism: { tensor: 1 },
          acceleratorTypes: { labelKey: 'nvidia.com/gpu.product', labelValues: ['NVIDIA-L4'] },
          containers: [
            {
              name: 'vllm',
              image: 'vllm/vllm-openai:v0.11.0',
              args: ['--block-size=16', '--prefix-caching-hash-algo=sha256_cbor', '--kv-events-config', kvEventsJson()],
              env: [
                { name: 'PYTHONHASHSEED', value: '42' },
                { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf-token', key: 'token' } } },
              ],
              resources: { requests: { 'nvidia.com/gpu': '1' }, limits: { 'nvidia.com/gpu': '1' } },
              // false: the operator would replace this env (see modelServiceEnvSurvivesOperator)
              mountModelVolume: false,
            },
          ],
        },
      },
    },
  ];
  // JSON round trip: no shared sub-objects (like the synthesized output), so a test can break one field.
  return JSON.parse(JSON.stringify(objs)) as Obj[];
}

/** The object of a kind and name in a list; throws when absent. */
export function get(objs: readonly Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new Error(`fixture has no ${kind} ${name}`);
  return o;
}
