/** An optional Gateway API `Gateway` (Istio's gateway class by default). */
import { Construct } from 'constructs';
import { Gateway, GatewaySpecListenersAllowedRoutesNamespacesFrom } from '../../imports/gateway-gateway.networking.k8s.io.js';

/** Props of {@link ModelGateway}. */
export interface ModelGatewayProps {
  readonly name: string;
  /**
   * GatewayClass.
   * @default 'istio'
   */
  readonly className?: string;
  /**
   * HTTP listener port.
   * @default 80
   */
  readonly port?: number;
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** A Gateway with one HTTP listener that accepts routes from its own namespace. */
export class ModelGateway extends Construct {
  /** Listener name (HTTPRoute sectionName). */
  static readonly listenerName = 'http';
  readonly name: string;
  readonly port: number;
  readonly resource: Gateway;

  constructor(scope: Construct, id: string, props: ModelGatewayProps) {
    super(scope, id);
    this.name = props.name;
    this.port = props.port ?? 80;
    this.resource = new Gateway(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: {
        gatewayClassName: props.className ?? 'istio',
        listeners: [
          {
            name: ModelGateway.listenerName,
            port: this.port,
            protocol: 'HTTP',
            allowedRoutes: { namespaces: { from: GatewaySpecListenersAllowedRoutesNamespacesFrom.SAME } },
          },
        ],
      },
    });
  }
}
