/**
 * Object names and pod labels, computed once from the config. Every cross reference (Service names,
 * Gateway name, pool name, ConfigMap names) reads them from here, so no name is typed twice.
 */
import { Labels, Roles, type Role } from '@kvroute/epp/contract';
import type { DeploymentConfig } from './deployment-config.js';

/** Turn any string into a valid label value (≤ 63 chars, alphanumerics and -_. inside). */
export function toLabelValue(s: string): string {
  const v = s
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[^A-Za-z0-9]+$/, '');
  if (v === '') throw new Error(`cannot derive a Kubernetes label value from ${JSON.stringify(s)}; use a name with letters or digits`);
  return v;
}

/**
 * The model label the llm-d ModelService operator puts on the pods it creates: the served model name
 * lower-cased, runs of other characters than [a-z0-9-] replaced by "-", trimmed, at most 63 chars.
 */
export function operatorModelLabel(model: string): string {
  return model
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[-._]+|[-._]+$/g, '')
    .slice(0, 63);
}

/**
 * Pod labels the ModelService operator sets (llm-d-model-service child_resources.go): note the
 * camel-case `inferenceServing` key of that operator, unlike the `inference-serving` key of later llm-d.
 */
export const OperatorLabels = { inferenceServing: 'llm-d.ai/inferenceServing', model: 'llm-d.ai/model', role: Labels.role } as const;

/** Standard app labels shared by the kvroute objects. */
const PartOf = 'app.kubernetes.io/part-of';
const Name = 'app.kubernetes.io/name';
const Instance = 'app.kubernetes.io/instance';
const Component = 'app.kubernetes.io/component';

/** Names of every object that another object refers to. */
export class DeploymentNames {
  /** Computes the names for a config. */
  static of(config: DeploymentConfig): DeploymentNames {
    return new DeploymentNames(config);
  }

  readonly namespace: string;
  /** EPP Deployment, Service, ServiceAccount, Role, RoleBinding, PDB. */
  readonly epp: string;
  /** EPP ConfigMap. */
  readonly eppConfig: string;
  readonly decode: string;
  readonly prefill: string;
  /** Model-server ServiceAccount. */
  readonly modelServer: string;
  readonly modelService: string;
  /** BaseConfig ConfigMap of the ModelService. */
  readonly modelServiceBaseConfig: string;
  readonly inferencePool: string;
  readonly httpRoute: string;
  readonly gateway: string;
  readonly envoyFilter: string;
  readonly eppDestinationRule: string;
  readonly redis: string;
  readonly dashboard: string;
  readonly application: string;

  private constructor(private readonly config: DeploymentConfig) {
    const n = config.name;
    this.namespace = config.namespace;
    this.epp = `${n}-epp`;
    this.eppConfig = `${n}-epp-config`;
    this.decode = `${n}-decode`;
    this.prefill = `${n}-prefill`;
    this.modelServer = `${n}-model-server`;
    this.modelService = n;
    this.modelServiceBaseConfig = `${n}-base-config`;
    this.inferencePool = `${n}-pool`;
    this.httpRoute = `${n}-route`;
    this.gateway = config.gateway.name ?? `${n}-gateway`;
    this.envoyFilter = `${n}-ext-proc`;
    this.eppDestinationRule = `${n}-epp`;
    this.redis = `${n}-redis`;
    this.dashboard = `${n}-dashboard`;
    this.application = n;
  }

  /** In-cluster DNS name of a Service in the deployment namespace. */
  serviceHost(service: string): string {
    return `${service}.${this.namespace}.svc.cluster.local`;
  }

  /** Labels carried by every object. */
  get commonLabels(): Record<string, string> {
    return { [PartOf]: 'kvroute', [Instance]: this.config.name };
  }

  /**
   * Labels every model-server pod carries (the InferencePool selector). In ModelService mode these are
   * the labels the operator gives its pods.
   */
  get modelServerSelector(): Record<string, string> {
    if (this.config.workloadMode === 'modelservice') {
      return { [OperatorLabels.inferenceServing]: 'true', [OperatorLabels.model]: operatorModelLabel(this.config.model.name) };
    }
    return {
      [Labels.inferenceServing]: 'true',
      [Labels.model]: toLabelValue(this.config.model.name),
      [Instance]: this.config.name,
    };
  }

  /** Labels of the model-server pods of one role. */
  modelServerPodLabels(role: Role): Record<string, string> {
    return { ...this.modelServerSelector, [Labels.role]: role, [Name]: 'vllm', [Component]: `model-server-${role}` };
  }

  /** Selector of the model-server pods of one role. */
  modelServerRoleSelector(role: Role): Record<string, string> {
    return { ...this.modelServerSelector, [Labels.role]: role };
  }

  /** Selector (and pod labels) of the EPP pods. */
  get eppSelector(): Record<string, string> {
    return { [Name]: 'kvroute-epp', [Instance]: this.config.name, [Component]: 'endpoint-picker' };
  }

  /** Selector (and pod labels) of the Redis pods. */
  get redisSelector(): Record<string, string> {
    return { [Name]: 'redis', [Instance]: this.config.name, [Component]: 'kv-index' };
  }

  /** Labels Istio puts on the pods of a Gateway it deploys (NetworkPolicy source for ext_proc). */
  get gatewayPodLabels(): Record<string, string> {
    return this.config.gateway.podLabels ?? { 'gateway.networking.k8s.io/gateway-name': this.gateway };
  }

  /** Roles that run pods in this config. */
  get roles(): Role[] {
    return this.config.pd.enabled ? [Roles.decode, Roles.prefill] : [Roles.decode];
  }
}
