/**
 * The model servers as one llm-d `ModelService` (llm-d.ai/v1alpha1) custom resource.
 * The operator (llm-d/llm-d-model-service) is deprecated upstream; this mode exists for clusters that
 * still run it. The CRD's container type has no ports, probes or volume mounts: the operator's
 * BaseConfig templates add those (see model-service-base-config.ts). Containers keep mountModelVolume
 * false: the operator would otherwise replace their env with HF_TOKEN/HF_HOME, dropping PYTHONHASHSEED
 * and POD_IP; the pods bring their own HF_TOKEN Secret reference and model cache volume instead.
 */
import { Construct } from 'constructs';
import {
  ModelService as ModelServiceL1,
  ModelServiceSpecDecodeContainersResourcesLimits as DecodeLimits,
  ModelServiceSpecDecodeContainersResourcesRequests as DecodeRequests,
  ModelServiceSpecDecodeInitContainersResourcesLimits as DecodeInitLimits,
  ModelServiceSpecDecodeInitContainersResourcesRequests as DecodeInitRequests,
  ModelServiceSpecPrefillContainersResourcesLimits as PrefillLimits,
  ModelServiceSpecPrefillContainersResourcesRequests as PrefillRequests,
  ModelServiceSpecPrefillInitContainersResourcesLimits as PrefillInitLimits,
  ModelServiceSpecPrefillInitContainersResourcesRequests as PrefillInitRequests,
} from '../../imports/modelservice-llm-d.ai.js';
import type { Accelerator } from './accelerator.js';
import { type ContainerSpec, type ModelServiceEnvJson, toModelServiceContainer } from './container-spec.js';
import type { VllmServerParts } from './vllm-server.js';

/** One role of the ModelService. */
export interface ModelServiceRole {
  readonly replicas: number;
  readonly server: VllmServerParts;
  readonly accelerator: Accelerator;
}

/** Props of {@link ModelService}. */
export interface ModelServiceProps {
  readonly name: string;
  /** Served model name (OpenAI `model` field). */
  readonly modelName: string;
  /** Hugging Face repo id of the weights (`hf://<repo>`). */
  readonly huggingFaceRepo: string;
  /** Secret holding HF_TOKEN. */
  readonly authSecretName: string;
  readonly decode: ModelServiceRole;
  /**
   * Prefill role (P/D).
   * @default - no prefill pods
   */
  readonly prefill?: ModelServiceRole;
  /**
   * Gateway the operator attaches its route to.
   * @default - none (the chart emits its own HTTPRoute)
   */
  readonly gatewayRef?: { readonly name: string; readonly namespace: string };
  /**
   * BaseConfig ConfigMap the operator renders the child objects from.
   * @default - none (the operator's built-in defaults)
   */
  readonly baseConfigName?: string;
  /**
   * Labels of the ModelService object.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

interface Quantities<L, R> {
  limit: (s: string) => L;
  request: (s: string) => R;
}

function msContainer<L, R>(c: ContainerSpec, q: Quantities<L, R>) {
  const j = toModelServiceContainer(c);
  const map = <T>(rec: Record<string, string>, f: (s: string) => T): Record<string, T> =>
    Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, f(v)]));
  const env: ModelServiceEnvJson[] = j.env;
  return {
    name: j.name,
    image: j.image,
    ...(j.command ? { command: j.command } : {}),
    args: j.args,
    env,
    resources: { limits: map(j.resources.limits, q.limit), requests: map(j.resources.requests, q.request) },
    mountModelVolume: j.mountModelVolume,
  };
}

/**
 * Native sidecars (init containers with restartPolicy Always). The CRD's init containers have no
 * restartPolicy, so a long-running sidecar such as the routing proxy becomes a regular container there.
 */
function sidecars(s: VllmServerParts): ContainerSpec[] {
  return s.initContainers.filter((c) => c.restartPolicy === 'Always');
}
/** Init containers that run to completion. */
function plainInits(s: VllmServerParts): ContainerSpec[] {
  return s.initContainers.filter((c) => c.restartPolicy !== 'Always');
}

/** Ports the operator's BaseConfig templates look up by name (`{{ "app_port" | getPort }}`). */
export const ModelServicePortNames = { app: 'app_port', internal: 'internal_port' } as const;

/** A ModelService custom resource carrying the same containers as the Deployment mode. */
export class ModelService extends Construct {
  readonly resource: ModelServiceL1;

  constructor(scope: Construct, id: string, props: ModelServiceProps) {
    super(scope, id);
    if (props.decode.replicas < 1) {
      throw new Error(`ModelService ${props.name}: decode.replicas ${props.decode.replicas} must be ≥ 1 to serve traffic`);
    }
    const d = props.decode;
    const p = props.prefill;
    this.resource = new ModelServiceL1(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: {
        ...(props.baseConfigName ? { baseConfigMapRef: { name: props.baseConfigName } } : {}),
        modelArtifacts: { uri: `hf://${props.huggingFaceRepo}`, authSecretName: props.authSecretName },
        routing: {
          modelName: props.modelName,
          ports: [
            { name: ModelServicePortNames.app, port: d.server.servingPort },
            { name: ModelServicePortNames.internal, port: d.server.vllmPort },
          ],
          ...(props.gatewayRef ? { gatewayRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: props.gatewayRef.name, namespace: props.gatewayRef.namespace }] } : {}),
        },
        decoupleScaling: false,
        decode: {
          replicas: d.replicas,
          parallelism: { tensor: d.accelerator.count },
          acceleratorTypes: { labelKey: d.accelerator.nodeLabelKey, labelValues: [...d.accelerator.nodeLabelValues] },
          containers: [...d.server.containers, ...sidecars(d.server)].map((c) => msContainer(c, { limit: DecodeLimits.fromString, request: DecodeRequests.fromString })),
          ...(plainInits(d.server).length > 0
            ? { initContainers: plainInits(d.server).map((c) => msContainer(c, { limit: DecodeInitLimits.fromString, request: DecodeInitRequests.fromString })) }
            : {}),
        },
        ...(p
          ? {
              prefill: {
                replicas: p.replicas,
                parallelism: { tensor: p.accelerator.count },
                acceleratorTypes: { labelKey: p.accelerator.nodeLabelKey, labelValues: [...p.accelerator.nodeLabelValues] },
                containers: [...p.server.containers, ...sidecars(p.server)].map((c) => msContainer(c, { limit: PrefillLimits.fromString, request: PrefillRequests.fromString })),
                ...(plainInits(p.server).length > 0
                  ? { initContainers: plainInits(p.server).map((c) => msContainer(c, { limit: PrefillInitLimits.fromString, request: PrefillInitRequests.fromString })) }
                  : {}),
              },
            }
          : {}),
      },
    });
  }
}
