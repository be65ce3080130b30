/**
 * The EPP config object, built with the EPP's own schema (`parseEppConfig` from the epp package), so a
 * field the EPP does not know fails synth instead of failing the pod at start.
 */
import { EppPorts, type EppConfig, parseEppConfig, RedisPasswordEnv, VllmPorts } from '@kvroute/epp/contract';
import { stringify } from 'yaml';
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
      scheduling: { pd: { enabled: config.pd.enabled, nonCachedTokensThreshold: config.pd.nonCachedTokensThreshold } },
      admission: config.epp.admission,
      logLevel: config.epp.logLevel,
    },
    'EPP config built from the deployment config',
  );
}

/** The config file content (YAML) mounted into the EPP. */
export function renderEppConfig(eppConfig: EppConfig): string {
  // YAML 1.1 quoting ("off", "on", "yes" stay strings for 1.1 parsers too); still valid YAML 1.2.
  return stringify(eppConfig, { lineWidth: 0, version: '1.1' });
}
