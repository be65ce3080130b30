/**
 * llm-d style scheduling plugins in the EPP config (`scheduling.plugins` + `scheduling.profiles`,
 * the shape of llm-d's EndpointPickerConfig, docs/facts/gateway-protocol.md, "EndpointPickerConfig"): the plugin types this EPP
 * implements, their parameters, and the rules a plugin/profile list must follow. Only zod-free
 * data and pure checks live here, so the cdk8s app validates a config the same way the EPP does.
 *
 *   scheduling:
 *     plugins:
 *       - { type: precise-prefix-cache-scorer }
 *       - { type: queue-scorer }
 *       - { type: decode-filter }
 *       - { type: max-score-picker }
 *     profiles:
 *       - name: default
 *         plugins: [{ pluginRef: decode-filter }, { pluginRef: precise-prefix-cache-scorer, weight: 3 },
 *                   { pluginRef: queue-scorer, weight: 2 }, { pluginRef: max-score-picker }]
 *
 * One profile is the primary (decode) profile whatever its name. Two profiles must be named
 * `decode` and `prefill` and turn P/D disaggregation on; the threshold is the
 * `prefix-based-pd-decider` plugin's `nonCachedTokens` when one is declared, else
 * `scheduling.pd.nonCachedTokensThreshold`. A scorer's weight defaults to 1 (as in llm-d); a
 * profile without a picker gets a `max-score-picker`. Profile handlers and deciders are declared
 * under `plugins` only, never referenced from a profile.
 */

export type PluginKind = 'scorer' | 'filter' | 'picker' | 'profile-handler' | 'decider';

export interface PluginTypeInfo {
  readonly kind: PluginKind;
  /** Accepted `parameters` keys and what each must be. */
  readonly parameters: Readonly<Record<string, ParameterKind>>;
}

/** What a plugin parameter must be. */
export type ParameterKind = 'non-negative integer' | 'positive integer' | 'boolean' | 'number from 0 to 1';

/** Whether `value` is a valid `kind`. */
export function parameterOk(kind: ParameterKind, value: unknown): boolean {
  switch (kind) {
    case 'boolean':
      return typeof value === 'boolean';
    case 'number from 0 to 1':
      return typeof value === 'number' && value >= 0 && value <= 1;
    default:
      return typeof value === 'number' && Number.isInteger(value) && value >= (kind === 'positive integer' ? 1 : 0);
  }
}

/**
 * Every plugin type this EPP implements (llm-d type names and semantics: `prefix-cache-scorer` is
 * the approximate scorer that learns from routing decisions, `precise-prefix-cache-scorer` reads
 * the KV-event index).
 */
export const PLUGIN_TYPES: Readonly<Record<string, PluginTypeInfo>> = Object.freeze({
  'precise-prefix-cache-scorer': { kind: 'scorer', parameters: {} },
  'prefix-cache-scorer': {
    kind: 'scorer',
    parameters: {
      blockSizeTokens: 'positive integer',
      blockSize: 'positive integer',
      autoTune: 'boolean',
      maxPrefixBlocksToMatch: 'positive integer',
      maxPrefixTokensToMatch: 'positive integer',
      lruCapacityPerServer: 'positive integer',
    },
  },
  'queue-scorer': { kind: 'scorer', parameters: {} },
  /** kvroute's own: lowest predicted TTFT; its options are `scheduling.predictedTtft`. */
  'predicted-ttft-scorer': { kind: 'scorer', parameters: {} },
  'kv-cache-utilization-scorer': { kind: 'scorer', parameters: {} },
  'load-aware-scorer': { kind: 'scorer', parameters: { threshold: 'positive integer' } },
  'active-request-scorer': { kind: 'scorer', parameters: { idleThreshold: 'non-negative integer', maxBusyScore: 'number from 0 to 1' } },
  'session-affinity-scorer': { kind: 'scorer', parameters: { capacity: 'positive integer' } },
  'no-hit-lru-scorer': { kind: 'scorer', parameters: { lruSize: 'positive integer' } },
  'decode-filter': { kind: 'filter', parameters: {} },
  'prefill-filter': { kind: 'filter', parameters: {} },
  'max-score-picker': { kind: 'picker', parameters: { maxNumOfEndpoints: 'positive integer' } },
  'random-picker': { kind: 'picker', parameters: { maxNumOfEndpoints: 'positive integer' } },
  'weighted-random-picker': { kind: 'picker', parameters: { maxNumOfEndpoints: 'positive integer' } },
  'single-profile-handler': { kind: 'profile-handler', parameters: {} },
  'pd-profile-handler': { kind: 'profile-handler', parameters: {} },
  'disagg-profile-handler': { kind: 'profile-handler', parameters: {} },
  'prefix-based-pd-decider': { kind: 'decider', parameters: { nonCachedTokens: 'non-negative integer' } },
});

/** The type info of `type`, or undefined for an unknown type (own properties only, so "constructor" is unknown). */
export function pluginType(type: string): PluginTypeInfo | undefined {
  return Object.hasOwn(PLUGIN_TYPES, type) ? PLUGIN_TYPES[type] : undefined;
}

export interface PluginSpec {
  readonly type: string;
  /** Defaults to `type`. */
  readonly name?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

export interface ProfileSpec {
  readonly name: string;
  readonly plugins: readonly { readonly pluginRef: string; readonly weight?: number }[];
}

/** One problem with a plugin/profile list: where (path below `scheduling`), and what to do. */
export interface PluginIssue {
  readonly path: (string | number)[];
  readonly message: string;
}

const known = (): string => Object.keys(PLUGIN_TYPES).join(', ');

/** Every problem of `plugins` + `profiles` (empty when the pair is usable). */
export function pluginIssues(plugins: readonly PluginSpec[] | undefined, profiles: readonly ProfileSpec[] | undefined): PluginIssue[] {
  const issues: PluginIssue[] = [];
  if (plugins === undefined && profiles === undefined) return issues;
  if (plugins === undefined || profiles === undefined) {
    issues.push({
      path: [plugins === undefined ? 'plugins' : 'profiles'],
      message: `is missing: scheduling.plugins and scheduling.profiles go together (declare the plugins, then reference them from profiles); remove both to use scheduling.weights`,
    });
    return issues;
  }
  const byName = new Map<string, PluginTypeInfo>();
  plugins.forEach((p, i) => {
    const info = pluginType(p.type);
    if (info === undefined) {
      issues.push({ path: ['plugins', i, 'type'], message: `plugin type "${p.type}" is not known; use one of ${known()}` });
      return;
    }
    const name = p.name ?? p.type;
    if (byName.has(name)) issues.push({ path: ['plugins', i, 'name'], message: `plugin name "${name}" is used more than once; give each plugin a distinct name` });
    byName.set(name, info);
    for (const [key, value] of Object.entries(p.parameters ?? {})) {
      const want = Object.hasOwn(info.parameters, key) ? info.parameters[key] : undefined;
      if (want === undefined) {
        const accepted = Object.keys(info.parameters);
        issues.push({
          path: ['plugins', i, 'parameters', key],
          message: `is not a parameter of ${p.type}; ${accepted.length === 0 ? 'it takes no parameters' : `accepted: ${accepted.join(', ')}`}`,
        });
      } else if (!parameterOk(want, value)) {
        issues.push({ path: ['plugins', i, 'parameters', key], message: `${JSON.stringify(value)} is not a ${want}` });
      }
    }
  });
  if (profiles.length === 0 || profiles.length > 2) {
    issues.push({ path: ['profiles'], message: `has ${profiles.length} profiles; use one (the primary profile) or two named "decode" and "prefill" (P/D)` });
  } else if (profiles.length === 2) {
    const names = profiles.map((p) => p.name).sort();
    if (names[0] !== 'decode' || names[1] !== 'prefill') {
      issues.push({ path: ['profiles'], message: `two profiles must be named "decode" and "prefill" (P/D disaggregation), got ${JSON.stringify(profiles.map((p) => p.name))}` });
    }
  }
  profiles.forEach((profile, pi) => {
    let pickers = 0;
    profile.plugins.forEach((ref, ri) => {
      const info = byName.get(ref.pluginRef);
      const at = ['profiles', pi, 'plugins', ri];
      if (info === undefined) {
        issues.push({ path: [...at, 'pluginRef'], message: `"${ref.pluginRef}" names no plugin in scheduling.plugins; declare it there (its name defaults to its type)` });
        return;
      }
      if (info.kind === 'profile-handler' || info.kind === 'decider') {
        issues.push({ path: [...at, 'pluginRef'], message: `"${ref.pluginRef}" is a ${info.kind}; declare it under scheduling.plugins only, not in a profile` });
      }
      if (ref.weight !== undefined && info.kind !== 'scorer') {
        issues.push({ path: [...at, 'weight'], message: `only scorers take a weight; "${ref.pluginRef}" is a ${info.kind}` });
      }
      if (info.kind === 'picker') pickers++;
    });
    if (pickers > 1) issues.push({ path: ['profiles', pi, 'plugins'], message: `profile "${profile.name}" has ${pickers} pickers; keep one` });
  });
  const deciders = plugins.filter((p) => pluginType(p.type)?.kind === 'decider');
  if (deciders.length > 1) issues.push({ path: ['plugins'], message: `declares ${deciders.length} P/D deciders; keep one prefix-based-pd-decider` });
  return issues;
}
