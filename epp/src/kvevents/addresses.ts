/**
 * ZeroMQ addresses of a pod's KV-event sockets, derived from its endpoint id `ip:port` (IPv6 as
 * `[addr]:port`) and the ports vLLM binds (`events.podPublisherPort`, `events.podReplayPort`).
 */

export interface PodEventAddresses {
  /** `tcp://<ip>:<publisherPort>` (vLLM's PUB socket, discovery/connect mode). */
  readonly publisher: string;
  /** `tcp://<ip>:<replayPort>` (vLLM's ROUTER socket), when a replay port is configured. */
  readonly replay?: string;
}

/** Host part of `ip:port` / `[v6]:port` / `host`, brackets kept for IPv6. */
export function endpointHost(endpoint: string): string {
  if (endpoint.startsWith('[')) {
    const close = endpoint.indexOf(']');
    if (close < 0) throw new Error(`endpoint ${JSON.stringify(endpoint)}: unterminated "[" in an IPv6 address; write "[addr]:port"`);
    return endpoint.slice(0, close + 1);
  }
  const colon = endpoint.lastIndexOf(':');
  if (colon !== endpoint.indexOf(':')) {
    throw new Error(`endpoint ${JSON.stringify(endpoint)}: unbracketed IPv6 address; write "[addr]:port"`);
  }
  return colon < 0 ? endpoint : endpoint.slice(0, colon);
}

export function podEventAddresses(endpoint: string, publisherPort: number, replayPort?: number): PodEventAddresses {
  const host = endpointHost(endpoint);
  return {
    publisher: `tcp://${host}:${publisherPort}`,
    ...(replayPort !== undefined ? { replay: `tcp://${host}:${replayPort}` } : {}),
  };
}
