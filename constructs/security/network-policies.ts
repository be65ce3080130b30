/**
 * Ingress NetworkPolicies of the EPP and Redis: only the gateway reaches ext_proc, only model-server
 * pods reach the ZMQ port, only the EPP reaches Redis, and Prometheus reaches the metrics port.
 * A pod selected by any Ingress policy denies every other ingress.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';

/** A set of pods, optionally in another namespace. */
export class PodPeer {
  /** Pods with `labels` in the policy's own namespace. */
  static pods(labels: Record<string, string>): PodPeer {
    return new PodPeer(labels, undefined);
  }
  /** Pods with `labels` in namespace `namespace`. */
  static podsInNamespace(labels: Record<string, string>, namespace: string): PodPeer {
    return new PodPeer(labels, namespace);
  }
  /** Every pod of namespace `namespace`. */
  static namespace(namespace: string): PodPeer {
    return new PodPeer(undefined, namespace);
  }

  private constructor(
    readonly labels: Record<string, string> | undefined,
    readonly namespace: string | undefined,
  ) {
    if (labels !== undefined && Object.keys(labels).length === 0) {
      throw new Error('PodPeer: empty label set would match every pod; pass the labels of the allowed pods or use PodPeer.namespace()');
    }
  }

  toPeer(): k8s.NetworkPolicyPeer {
    return {
      ...(this.labels ? { podSelector: { matchLabels: { ...this.labels } } } : {}),
      ...(this.namespace ? { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': this.namespace } } } : {}),
    };
  }
}

/** Props of {@link AllowIngress}. */
export interface AllowIngressProps {
  readonly name: string;
  /** Pods the policy protects. */
  readonly target: Record<string, string>;
  /** Who may connect. */
  readonly from: PodPeer;
  /** Named or numbered ports they may connect to. */
  readonly ports: readonly (string | number)[];
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** One NetworkPolicy: `from` → `target` on `ports` (TCP). */
export class AllowIngress extends Construct {
  readonly resource: k8s.KubeNetworkPolicy;
  constructor(scope: Construct, id: string, props: AllowIngressProps) {
    super(scope, id);
    if (props.ports.length === 0) throw new Error(`AllowIngress ${props.name}: no ports; list the ports the peer may reach`);
    this.resource = new k8s.KubeNetworkPolicy(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: {
        podSelector: { matchLabels: { ...props.target } },
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [props.from.toPeer()],
            ports: props.ports.map((p) => ({ protocol: 'TCP', port: typeof p === 'number' ? k8s.IntOrString.fromNumber(p) : k8s.IntOrString.fromString(p) })),
          },
        ],
      },
    });
  }
}
