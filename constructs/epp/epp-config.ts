/**
 * The EPP config object, built with the EPP's own schema (`parseEppConfig` from the epp package), so a
 * field the EPP does not know fails synth instead of failing the pod at start.
 */
import { EppPorts, type EppConfig, mapEndpointPickerConfig, parseEppConfig, RedisPasswordEnv, VllmPorts } from '@kvroute/epp/contract';
import { parse, stringify } from 'yaml';
import type { DeploymentConfig } from '../config/deployment-config.js';
import type { DeploymentNames } from '../config/names.js';

/** Port of the Redis Service. */
export const RedisPort = 6379;

/** The EPP config for a deployment. */
export function buildEppConfig(config: DeploymentConfig, names: DeploymentNames): EppConfig {
  const bind = config.epp.eventsMode === 'bind';
  return parseEppConfig(
    {
      model: config.model.name,
      blockSize: config.kvCache.blockSize,
      hashAlgo: config.kvCache.hashAlgo,
      hashSeed: config.kvCache.hashSeed,
      server: { grpcPort: EppPorts.grpc, healthPort: EppPorts.grpcHealth, httpPort: EppPorts.http },
      discovery: { mode: 'kubernetes', poolName: names.inferencePool, poolNamespace: names.namespace },
      events: bind
        ? { mode: 'bind', zmqBind: `tcp://*:${EppPorts.zmq}`, podReplayPort: VllmPorts.kvEventsReplay }
        : { mode: 'connect', podPublisherPort: EppPorts.zmq, podReplayPort: VllmPorts.kvEventsReplay },
      index: config.redis.enabled
        ? { backend: 'redis', url: `redis://${names.serviceHost(names.redis)}:${RedisPort}`, passwordEnv: RedisPasswordEnv, keyPrefix: `kvroute:${config.name}:` }
        : { backend: 'memory', memoryBudgetBytes: config.epp.indexMemoryMiB * 1024 * 1024 },
      tokenizer: { hfRepo: config.model.name },
      scheduling: { pd: { enabled: config.pd.enabled, nonCachedTokensThreshold: config.pd.nonCachedTokensThreshold }, ...endpointPickerScheduling(config) },
      admission: config.epp.admission,
      logLevel: config.epp.logLevel,
    },
    'EPP config built from the deployment config',
  );
}

/**
 * The scheduling fields of `epp.endpointPickerConfig` (llm-d's EndpointPickerConfig), read by the
 * EPP's own loader; throws naming the field, the value and the fix.
 */
export function endpointPickerScheduling(config: DeploymentConfig): Record<string, unknown> {
  const raw = config.epp.endpointPickerConfig;
  if (raw === undefined) return {};
  let doc: unknown = raw;
  if (typeof raw === 'string') {
    try {
      doc = parse(raw);
    } catch (e) {
      throw new Error(`epp.endpointPickerConfig: not valid YAML (${(e as Error).message.split('\n')[0]}); give an EndpointPickerConfig document`);
    }
  }
  const o = mapEndpointPickerConfig(doc, 'epp.endpointPickerConfig').overlay;
  if (o.blockSize !== undefined && o.blockSize !== config.kvCache.blockSize) {
    throw new Error(`epp.endpointPickerConfig: tokenProcessorConfig.blockSize ${o.blockSize} differs from kvCache.blockSize ${config.kvCache.blockSize}; the EPP must use vLLM's --block-size: set one value in both`);
  }
  if (o.hashSeed !== undefined && o.hashSeed !== config.kvCache.hashSeed) {
    throw new Error(`epp.endpointPickerConfig: tokenProcessorConfig.hashSeed "${o.hashSeed}" differs from kvCache.hashSeed "${config.kvCache.hashSeed}"; the EPP must use vLLM's PYTHONHASHSEED: set one value in both`);
  }
  return { plugins: o.scheduling.plugins, profiles: o.scheduling.profiles, ...(o.scheduling.tierWeights ? { tierWeights: o.scheduling.tierWeights } : {}) };
}

/** The config file content (YAML) mounted into the EPP. */
export function renderEppConfig(eppConfig: EppConfig): string {
  // YAML 1.1 quoting ("off", "on", "yes" stay strings for 1.1 parsers too); still valid YAML 1.2.
  return stringify(eppConfig, { lineWidth: 0, version: '1.1' });
}
