/**
 * Endpoint strings of the GIE protocol: `ip:port`, IPv6 bracketed (`[fd00::1]:8000`), several
 * joined with `,` in preference order (docs/facts/gateway-protocol.md). Subset hints match on the IP only.
 */
import { ApiError } from '../contract/errors.js';
import { canonicalHost, joinHostPort, parseHostPort, type HostPort } from '../util/host-port.js';

/** Parses an endpoint of the GIE protocol (see util/host-port.ts). */
export const parseEndpoint = parseHostPort;
export { joinHostPort, type HostPort };

/**
 * Normalises the director's endpoints into the header value: each `ip:port` (IPv6 bracketed),
 * joined by `,`. Throws ApiError `no_endpoint` for an empty list and `internal` for a malformed one
 * (that is a scheduler bug, not a client error).
 */
export function formatDestination(endpoints: readonly string[]): { value: string; list: string[] } {
  if (endpoints.length === 0) throw new ApiError('no_endpoint', 'no endpoint available for this request; check that the pool has ready pods');
  const list = endpoints.map((e) => {
    const hp = parseEndpoint(e);
    if (!hp) throw new ApiError('internal', `director returned endpoint ${JSON.stringify(e)}, expected "ip:port" (IPv6 as "[addr]:port")`);
    return joinHostPort(hp);
  });
  return { value: list.join(','), list };
}

/**
 * True when `endpoint` is allowed by the subset hint: `subset` undefined allows everything,
 * otherwise the endpoint's IP must equal the IP of some subset entry (ports ignored, as in the
 * reference EPP, because the hint may name the pod rather than the target port).
 */
export function subsetAllows(subset: readonly string[] | undefined, endpoint: string): boolean {
  if (subset === undefined) return true;
  const h = canonicalHost(endpoint);
  return subset.some((s) => canonicalHost(s) === h);
}
