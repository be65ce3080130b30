/**
 * Prometheus metrics for tokenization, as an observer (`TokenizationOptions.observer`), so the core
 * logic stays free of metrics code. Register on the registry the caller passes.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { TokenizationObserver } from './tokenization.js';
import { TokenizationMetrics } from '../contract/metrics.js';

/** An observer recording `kvroute_tokenization_*` metrics on `registry`. */
export function tokenizationMetrics(registry: Registry): TokenizationObserver {
  const requests = new Counter({
    name: TokenizationMetrics.requests.name,
    help: 'Prompts tokenized, by kind (completion, chat, token_ids) and result (ok or an error code).',
    labelNames: ['kind', 'result'] as const,
    registers: [registry],
  });
  const tokens = new Counter({
    name: TokenizationMetrics.tokens.name,
    help: 'Tokens returned by tokenization, by source: computed, or reused from the prefix store.',
    labelNames: ['source'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: TokenizationMetrics.duration.name,
    help: 'Tokenization wall time including the worker queue.',
    labelNames: ['kind'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  return {
    onTokenized(e) {
      requests.inc({ kind: e.kind, result: 'ok' });
      tokens.inc({ source: 'reused' }, e.reusedTokens);
      tokens.inc({ source: 'computed' }, e.tokens - e.reusedTokens);
      duration.observe({ kind: e.kind }, e.seconds);
    },
    onError(kind, err) {
      requests.inc({ kind, result: err.code });
    },
  };
}
