/**
 * Explicit Istio wiring of the EPP (the seed's approach, corrected): an EnvoyFilter on the gateway
 * that inserts ext_proc before the router, adds the ORIGINAL_DST cluster keyed on
 * `x-gateway-destination-endpoint`, and points the model route at it.
 */
import { Construct } from 'constructs';
import {
  EnvoyFilter,
  EnvoyFilterSpecConfigPatchesApplyTo as ApplyTo,
  EnvoyFilterSpecConfigPatchesMatchContext as Context,
  EnvoyFilterSpecConfigPatchesPatchOperation as Op,
  type EnvoyFilterSpecConfigPatches,
} from '../../imports/envoyfilter-networking.istio.io.js';
import { type ExtProcBodyMode, extProcFilterPatch, originalDstCluster, routeToCluster } from './ext-proc-filter.js';

/** Gateway API duration ("10m", "600s", "500ms") → protobuf duration in seconds ("600s"). */
export function envoyDuration(d: string): string {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`duration ${JSON.stringify(d)} is not a Gateway API duration; write e.g. "600s" or "10m"`);
  const n = Number(m[1]);
  const seconds = { ms: n / 1000, s: n, m: n * 60, h: n * 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return `${seconds}s`;
}

/** Props of {@link ExtProcEnvoyFilter}. */
export interface ExtProcEnvoyFilterProps {
  readonly name: string;
  /** Gateway whose Envoy gets the patches. */
  readonly gatewayName: string;
  /** Listener port of the gateway (route configuration to patch). */
  readonly listenerPort: number;
  /** Hostnames of the model route; each becomes an Istio virtual host `<host>:<port>`. Empty = `*`. */
  readonly hostnames: readonly string[];
  readonly eppServiceHost: string;
  readonly eppPort: number;
  /**
   * ext_proc body mode.
   * @default 'FULL_DUPLEX_STREAMED'
   */
  readonly bodyMode?: ExtProcBodyMode;
  /**
   * Forward requests when the EPP is down.
   * @default true
   */
  readonly failureModeAllow?: boolean;
  /**
   * Timeout of the repointed route (keep it equal to the HTTPRoute's request timeout).
   * @default '600s'
   */
  readonly routeTimeout?: string;
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** The EnvoyFilter; `clusterName` is the ORIGINAL_DST cluster. */
export class ExtProcEnvoyFilter extends Construct {
  readonly name: string;
  readonly clusterName: string;
  readonly resource: EnvoyFilter;

  constructor(scope: Construct, id: string, props: ExtProcEnvoyFilterProps) {
    super(scope, id);
    this.name = props.name;
    this.clusterName = `${props.name}-original-dst`;
    const hosts = props.hostnames.length > 0 ? props.hostnames : ['*'];
    const patches: EnvoyFilterSpecConfigPatches[] = [
      {
        applyTo: ApplyTo.CLUSTER,
        match: { context: Context.GATEWAY },
        patch: { operation: Op.ADD, value: originalDstCluster(this.clusterName) },
      },
      {
        applyTo: ApplyTo.HTTP_UNDERSCORE_FILTER,
        match: {
          context: Context.GATEWAY,
          listener: {
            portNumber: props.listenerPort,
            filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } },
          },
        },
        patch: {
          operation: Op.INSERT_UNDERSCORE_BEFORE,
          value: extProcFilterPatch({
            serviceHost: props.eppServiceHost,
            port: props.eppPort,
            requestBodyMode: props.bodyMode ?? 'FULL_DUPLEX_STREAMED',
            failureModeAllow: props.failureModeAllow ?? true,
          }),
        },
      },
      ...hosts.map(
        (h): EnvoyFilterSpecConfigPatches => ({
          applyTo: ApplyTo.HTTP_UNDERSCORE_ROUTE,
          match: { context: Context.GATEWAY, routeConfiguration: { portNumber: props.listenerPort, vhost: { name: `${h}:${props.listenerPort}` } } },
          patch: { operation: Op.MERGE, value: routeToCluster(this.clusterName, envoyDuration(props.routeTimeout ?? '600s')) },
        }),
      ),
    ];
    this.resource = new EnvoyFilter(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: props.gatewayName }],
        configPatches: patches,
      },
    });
  }
}
