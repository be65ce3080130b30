/**
 * `host:port` strings, the one implementation: endpoints are `ip:port` with IPv6 bracketed
 * (`[fd00::1]:8000`), the form the gateway protocol, the KV-event topics and the discovery use.
 */
import { isIP } from 'node:net';

export interface HostPort {
  /** IP or host name, without brackets. */
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `ip:port`, `[v6]:port` or an unbracketed `v6:port` (split at the last colon).
 * Returns undefined when there is no valid port (1–65535) or no host.
 */
export function parseHostPort(s: string): HostPort | undefined {
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

/** The host of `ip:port` / `[v6]:port` without brackets; a string without a port is returned unbracketed. */
export function hostOf(endpoint: string): string {
  const hp = parseHostPort(endpoint);
  if (hp) return hp.host;
  const t = endpoint.trim();
  return t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t;
}

/**
 * The host of an endpoint in one spelling, for comparisons: brackets removed and IPv6 written the
 * canonical way, so "fd00:0::1" and "[fd00::1]:8000" name the same host.
 */
export function canonicalHost(endpoint: string): string {
  const host = hostOf(endpoint);
  if (isIP(host) !== 6) return host;
  try {
    return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  } catch {
    return host.toLowerCase();
  }
}
