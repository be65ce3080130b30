/** Role filters (`llm-d.ai/role`), with llm-d's acceptance rules. */
import type { EndpointState } from '../datalayer/endpoint-store.js';
import type { Filter } from './types.js';

/** Decode accepts decode and both (and pods without a role, which static discovery maps to both). */
export class DecodeFilter implements Filter {
  readonly name = 'decode-filter';
  filter(_req: unknown, candidates: readonly EndpointState[]): EndpointState[] {
    return candidates.filter((c) => c.endpoint.role === 'decode' || c.endpoint.role === 'both');
  }
}

/** Prefill accepts prefill and both. */
export class PrefillFilter implements Filter {
  readonly name = 'prefill-filter';
  filter(_req: unknown, candidates: readonly EndpointState[]): EndpointState[] {
    return candidates.filter((c) => c.endpoint.role === 'prefill' || c.endpoint.role === 'both');
  }
}
