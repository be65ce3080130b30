/**
 * Endpoint strings of the GIE protocol: `ip:port`, IPv6 bracketed (`[fd00::1]:8000`), several
 * joined with `,` in preference order (epp-protocol.md §1.3). Subset hints match on the IP only
 * (§1.4).
 */
import { isIP } from 'node:net';
import { ApiError } from '../contract/errors.js';

export interface HostPort {
  /** IP or host name without brackets. */
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `ip:port`, `[v6]:port` or an unbracketed `v6:port` (split at the last colon).
 * Returns undefined when there is no valid port.
 */
export function parseEndpoint(s: string): HostPort | undefined {
  const t = s.trim();
  let host: string;
  let portText: string;
  if (t.startsWith('[')) {
    const close = t.indexOf(']');
    if (close < 0 || t[close + 1] !== ':') return undefined;
    host = t.slice(1, close);
    portText = t.slice(close + 2);
  } else {
    const i = t.lastIndexOf(':');
    if (i <= 0) return undefined;
    host = t.slice(0, i);
    portText = t.slice(i + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535 || host === '') return undefined;
  return { host, port };
}

/** `host:port`, bracketing IPv6 (what `net.JoinHostPort` does in Go). */
export function joinHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

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

function hostOf(s: string): string {
  const hp = parseEndpoint(s);
  const host = hp ? hp.host : s.trim().replace(/^\[|\]$/g, '');
  // Normalise IPv6 spelling so "fd00:0::1" and "fd00::1" match.
  if (isIP(host) === 6) {
    try {
      return new URL(`http://[${host}]/`).hostname.slice(1, -1);
    } catch {
      return host.toLowerCase();
    }
  }
  return host;
}

/**
 * True when `endpoint` is allowed by the subset hint: `subset` undefined allows everything,
 * otherwise the endpoint's IP must equal the IP of some subset entry (ports ignored, as in the
 * reference EPP, because the hint may name the pod rather than the target port).
 */
export function subsetAllows(subset: readonly string[] | undefined, endpoint: string): boolean {
  if (subset === undefined) return true;
  const h = hostOf(endpoint);
  return subset.some((s) => hostOf(s) === h);
}
