/**
 * Loads the EPP's own minimal protos (`epp/proto/**`) with @grpc/proto-loader at runtime.
 *
 * The proto directory is resolved relative to this module file, so the same code works from
 * `src/` (ts-jest, tsx) and from `dist/` (both are two levels below the package root, and the
 * package's `files` ships `proto/`).
 */
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Absolute path of `epp/proto`. */
export const PROTO_DIR: string = fileURLToPath(new URL('../../proto/', import.meta.url));

export const EXT_PROC_PROTO = 'envoy/service/ext_proc/v3/external_processor.proto';
export const HEALTH_PROTO = 'grpc/health/v1/health.proto';

/** Fully qualified service names. */
export const ServiceNames = {
  extProc: 'envoy.service.ext_proc.v3.ExternalProcessor',
  health: 'grpc.health.v1.Health',
} as const;

/**
 * Loader options. `keepCase` keeps the proto's snake_case names (they match the Envoy docs),
 * `defaults: false` leaves unset fields out of decoded objects (so whole-message assertions see
 * only what was on the wire), enums stay numeric, bytes are Buffers.
 */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  defaults: false,
  oneofs: false,
  includeDirs: [PROTO_DIR],
};

export interface LoadedProtos {
  readonly extProcService: grpc.ServiceDefinition;
  readonly healthService: grpc.ServiceDefinition;
  /** Client constructors (used by tests, the benchmark and the demo gateway). */
  readonly ExtProcClient: grpc.ServiceClientConstructor;
  readonly HealthClient: grpc.ServiceClientConstructor;
}

let cached: LoadedProtos | undefined;

function lookup(pkg: grpc.GrpcObject, dotted: string): grpc.ServiceClientConstructor {
  let cur: grpc.GrpcObject | grpc.ServiceClientConstructor | grpc.ProtobufTypeDefinition = pkg;
  for (const part of dotted.split('.')) {
    const next: unknown = (cur as Record<string, unknown>)[part];
    if (next === undefined) throw new Error(`proto service ${dotted} not found under ${PROTO_DIR}`);
    cur = next as grpc.GrpcObject;
  }
  if (typeof cur !== 'function') throw new Error(`${dotted} in ${PROTO_DIR} is not a service`);
  return cur as grpc.ServiceClientConstructor;
}

/** Loads (once) and returns the ext_proc and health service definitions. */
export function loadProtos(): LoadedProtos {
  if (cached) return cached;
  if (!existsSync(`${PROTO_DIR}${EXT_PROC_PROTO}`)) {
    throw new Error(`ext_proc proto not found at ${PROTO_DIR}${EXT_PROC_PROTO}; the package must ship its proto/ directory`);
  }
  const def = protoLoader.loadSync([EXT_PROC_PROTO, HEALTH_PROTO], LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def);
  const ExtProcClient = lookup(pkg, ServiceNames.extProc);
  const HealthClient = lookup(pkg, ServiceNames.health);
  cached = { extProcService: ExtProcClient.service, healthService: HealthClient.service, ExtProcClient, HealthClient };
  return cached;
}
