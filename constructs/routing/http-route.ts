/** The HTTPRoute from the gateway to the model (InferencePool or decode Service). */
import { Construct } from 'constructs';
import { HttpRoute, HttpRouteSpecRulesMatchesPathType } from '../../imports/httproute-gateway.networking.k8s.io.js';
import type { HttpBackend } from './http-backend.js';

/** Props of {@link ModelRoute}. */
export interface ModelRouteProps {
  readonly name: string;
  /** Gateway (same namespace) the route attaches to. */
  readonly gatewayName: string;
  readonly backend: HttpBackend;
  /**
   * Path prefix routed to the model.
   * @default '/v1'
   */
  readonly pathPrefix?: string;
  /**
   * Hostnames (empty: all hostnames of the listener).
   * @default []
   */
  readonly hostnames?: readonly string[];
  /**
   * Request timeout (LLM responses stream for minutes).
   * @default '600s'
   */
  readonly requestTimeout?: string;
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** One rule: `PathPrefix <pathPrefix>` → backend. */
export class ModelRoute extends Construct {
  readonly name: string;
  readonly resource: HttpRoute;

  constructor(scope: Construct, id: string, props: ModelRouteProps) {
    super(scope, id);
    const pathPrefix = props.pathPrefix ?? '/v1';
    if (!pathPrefix.startsWith('/')) throw new Error(`ModelRoute ${props.name}: pathPrefix ${JSON.stringify(pathPrefix)} must start with "/", e.g. "/v1"`);
    this.name = props.name;
    const hostnames = [...(props.hostnames ?? [])];
    this.resource = new HttpRoute(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: {
        parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: props.gatewayName }],
        ...(hostnames.length > 0 ? { hostnames } : {}),
        rules: [
          {
            matches: [{ path: { type: HttpRouteSpecRulesMatchesPathType.PATH_PREFIX, value: pathPrefix } }],
            backendRefs: [props.backend.toBackendRef()],
            timeouts: { request: props.requestTimeout ?? '600s' },
          },
        ],
      },
    });
  }
}
