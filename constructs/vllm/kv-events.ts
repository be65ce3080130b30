/** How vLLM publishes KV-cache events to the EPP: the JSON of vLLM's `--kv-events-config`. */
import { EppPorts, KvEventsTopic, VllmPorts } from '@kvroute/epp/contract';

/** Environment variable holding the pod IP (downward API), expanded by the kubelet in args. */
export const PodIpEnv = 'POD_IP';

/** Where vLLM's ZMQ PUB socket goes: connect to the EPP Service, or bind on the pod. */
export class KvEventsWiring {
  /** vLLM connects its PUB socket to the EPP Service (the EPP binds; one EPP replica per pod). */
  static toEppService(serviceHost: string, port: number = EppPorts.zmq): KvEventsWiring {
    if (serviceHost === '' || /[\s/:]/.test(serviceHost)) {
      throw new Error(`KvEventsWiring.toEppService: host ${JSON.stringify(serviceHost)} is not a DNS name; pass the EPP Service host, e.g. "kvroute-epp.llm-d.svc.cluster.local"`);
    }
    return new KvEventsWiring('connect', `tcp://${serviceHost}:${port}`, undefined);
  }

  /** vLLM binds its PUB socket on the pod and every EPP replica connects (discovery mode). */
  static podBinds(port: number = EppPorts.zmq): KvEventsWiring {
    return new KvEventsWiring('bind', `tcp://*:${port}`, port);
  }

  private constructor(
    /** What vLLM does with its socket. */
    readonly vllmSocket: 'connect' | 'bind',
    /** vLLM's `endpoint`. */
    readonly endpoint: string,
    /** Container port vLLM binds (bind mode only). */
    readonly podPort: number | undefined,
  ) {}
}

/** Options of {@link kvEventsConfig}. */
export interface KvEventsConfigOptions {
  /** Served model name (last part of the topic). */
  readonly model: string;
  /** Port the gateway sends traffic to on the pod (the topic's pod id is `$(POD_IP):<port>`). */
  readonly servingPort: number;
  readonly wiring: KvEventsWiring;
  /**
   * Port of vLLM's replay ROUTER socket; `undefined` disables replay.
   * @default VllmPorts.kvEventsReplay (5556)
   */
  readonly replayPort?: number;
  /**
   * Pod IPs are IPv6 (the topic then brackets the address: `kv@[$(POD_IP)]:<port>@<model>`).
   * @default false
   */
  readonly ipv6?: boolean;
}

/** The pod id in the topic: `$(POD_IP):<port>`, bracketed for IPv6 (expanded by the kubelet). */
export function topicPodId(servingPort: number, ipv6 = false): string {
  return ipv6 ? `[$(${PodIpEnv})]:${servingPort}` : `$(${PodIpEnv}):${servingPort}`;
}

/** The `--kv-events-config` object. Topic = `kv@$(POD_IP):<serving port>@<model>`. */
export function kvEventsConfig(o: KvEventsConfigOptions): Record<string, string | boolean> {
  const replay = 'replayPort' in o ? o.replayPort : VllmPorts.kvEventsReplay;
  return {
    enable_kv_cache_events: true,
    publisher: 'zmq',
    endpoint: o.wiring.endpoint,
    ...(replay !== undefined ? { replay_endpoint: `tcp://*:${replay}` } : {}),
    topic: KvEventsTopic.format(topicPodId(o.servingPort, o.ipv6 ?? false), o.model),
  };
}
