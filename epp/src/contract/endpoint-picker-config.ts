/**
 * llm-d's `EndpointPickerConfig` (the llm-d Router's `--config-file`/`--config-text`), read into
 * kvroute's EPP config, so an llm-d install keeps its config file when it swaps the EPP image.
 *
 *   apiVersion: llm-d.ai/v1alpha1            # or inference.networking.x-k8s.io/v1alpha1
 *   kind: EndpointPickerConfig
 *   plugins: [{ type, name?, parameters? }]  # name defaults to type
 *   schedulingProfiles: [{ name, plugins: [{ pluginRef, weight? }] }]
 *   dataLayer: { sources: [{ pluginRef, extractors: [{ pluginRef }] }] }
 *   featureGates: [name, ...]
 *   parser: { pluginRef }
 *
 * `mapEndpointPickerConfig` returns the EppConfig fields the document sets (scheduling plugins and
 * profiles in kvroute's terms, plus what the precise prefix-cache scorer's parameters say about
 * block size, hash seed, KV events, index and tokenizer) and one note per thing accepted without
 * effect. Plugins that only wire llm-d's internals (data sources, extractors, parsers) are
 * accepted and noted; an unknown type is an error listing the known ones. Only zod-free code and
 * the contract are imported, so the cdk8s app validates a config at synth time with this loader.
 */
import { EppConfigError } from './config.js';
import { parameterOk, PLUGIN_TYPES, pluginType, type PluginSpec, type ProfileSpec } from './scheduling-plugins.js';

/** The apiVersions an EndpointPickerConfig may carry (current first). */
export const EndpointPickerApiVersions = ['llm-d.ai/v1alpha1', 'inference.networking.x-k8s.io/v1alpha1'] as const;
export const EndpointPickerKind = 'EndpointPickerConfig';

/**
 * llm-d plugin types that only wire llm-d's internals (its data layer, request parsing, its own
 * producers of what kvroute's scorers compute themselves): accepted, reported, no effect.
 */
export const LLMD_WIRING_PLUGINS: Readonly<Record<string, string>> = Object.freeze({
  'metrics-data-source': 'kvroute scrapes each pod itself (see the model-server metric flags)',
  'core-metrics-extractor': 'kvroute reads the queue, running and KV-cache gauges itself',
  'endpoint-notification-source': 'kvroute tells its KV-event pool about pods itself',
  'openai-parser': 'kvroute parses OpenAI completions and chat bodies itself',
  'inflight-load-producer': 'kvroute counts in-flight requests per pod itself',
  'approx-prefix-cache-producer': 'prefix-cache-scorer keeps its own index',
  'precise-prefix-cache-producer': "its parameters configure kvroute's KV-event index like precise-prefix-cache-scorer's",
  'token-producer': 'kvroute tokenizes in process with the model\'s Hugging Face tokenizer (modelName)',
});

/** The scheduling llm-d runs without a config: queue 2, kv-cache utilization 2, prefix-cache 3, max-score picker. */
export const LLMD_DEFAULT_SCHEDULING: { plugins: PluginSpec[]; profiles: ProfileSpec[] } = {
  plugins: [{ type: 'queue-scorer' }, { type: 'kv-cache-utilization-scorer' }, { type: 'prefix-cache-scorer' }, { type: 'max-score-picker' }],
  profiles: [
    {
      name: 'default',
      plugins: [
        { pluginRef: 'queue-scorer', weight: 2 },
        { pluginRef: 'kv-cache-utilization-scorer', weight: 2 },
        { pluginRef: 'prefix-cache-scorer', weight: 3 },
        { pluginRef: 'max-score-picker' },
      ],
    },
  ],
};

/** EppConfig fields an EndpointPickerConfig sets (all optional; the flags override them). */
export interface EndpointPickerOverlay {
  model?: string;
  blockSize?: number;
  hashSeed?: string;
  scheduling: { plugins: PluginSpec[]; profiles: ProfileSpec[]; tierWeights?: Record<string, number> };
  events?: Record<string, unknown>;
  index?: Record<string, unknown>;
  tokenizer?: Record<string, unknown>;
  admission?: Record<string, unknown>;
}

export interface EndpointPickerMapping {
  readonly overlay: EndpointPickerOverlay;
  /** What was accepted without (full) effect, one sentence each, naming the field. */
  readonly notes: readonly string[];
}

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v));

/** Whether a parsed YAML/JSON document is an EndpointPickerConfig (by `kind`, or an llm-d apiVersion). */
export function isEndpointPickerConfig(doc: unknown): boolean {
  if (!isRec(doc)) return false;
  return doc.kind === EndpointPickerKind || (EndpointPickerApiVersions as readonly string[]).includes(doc.apiVersion as string);
}

/** Every plugin type the loader accepts: kvroute's plugins, then llm-d wiring plugins. */
export function knownEndpointPickerPluginTypes(): string[] {
  return [...Object.keys(PLUGIN_TYPES), ...Object.keys(LLMD_WIRING_PLUGINS)];
}

const TOP_LEVEL = ['apiVersion', 'kind', 'plugins', 'schedulingProfiles', 'dataLayer', 'featureGates', 'parser', 'saturationDetector', 'flowControl'];

class Collector {
  readonly issues: string[] = [];
  readonly notes: string[] = [];
  bad(path: string, message: string): void {
    this.issues.push(`${path}: ${message}`);
  }
  note(message: string): void {
    this.notes.push(message);
  }
  /** A non-negative (or positive) integer at `path`, or undefined when absent or bad. */
  int(path: string, v: unknown, min = 0): number | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      this.bad(path, `${show(v)} is not a ${min > 0 ? 'positive' : 'non-negative'} integer`);
      return undefined;
    }
    return v;
  }
  str(path: string, v: unknown): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') {
      this.bad(path, `${show(v)} is not a non-empty string`);
      return undefined;
    }
    return v;
  }
  bool(path: string, v: unknown): boolean | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') {
      this.bad(path, `${show(v)} is not true or false`);
      return undefined;
    }
    return v;
  }
  rec(path: string, v: unknown): Rec | undefined {
    if (v === undefined) return undefined;
    if (!isRec(v)) {
      this.bad(path, `${show(v)} is not a mapping`);
      return undefined;
    }
    return v;
  }
  /** Notes every key of `r` not in `used`. */
  rest(path: string, r: Rec, used: readonly string[], why: string): void {
    for (const k of Object.keys(r)) if (!used.includes(k)) this.note(`${path}.${k} is accepted and ignored: ${why}`);
  }
}

/** Reads the precise prefix-cache scorer's (or producer's) nested parameters into the overlay. */
function mapPrecise(c: Collector, at: string, params: Rec, o: EndpointPickerOverlay): void {
  const tokenProcessor = (path: string, tp: Rec | undefined): void => {
    if (!tp) return;
    const bs = c.int(`${path}.blockSize`, tp.blockSize, 1);
    if (bs !== undefined) o.blockSize = bs;
    if (tp.hashSeed !== undefined) {
      if (typeof tp.hashSeed === 'string' || (typeof tp.hashSeed === 'number' && Number.isInteger(tp.hashSeed))) o.hashSeed = String(tp.hashSeed);
      else c.bad(`${path}.hashSeed`, `${show(tp.hashSeed)} is not a string (vLLM's PYTHONHASHSEED, e.g. "42")`);
    }
    c.rest(path, tp, ['blockSize', 'hashSeed'], 'kvroute derives block keys from blockSize and hashSeed only');
  };
  tokenProcessor(`${at}.tokenProcessorConfig`, c.rec(`${at}.tokenProcessorConfig`, params.tokenProcessorConfig));
  const indexer = c.rec(`${at}.indexerConfig`, params.indexerConfig);
  if (indexer) {
    const ip = `${at}.indexerConfig`;
    tokenProcessor(`${ip}.tokenProcessorConfig`, c.rec(`${ip}.tokenProcessorConfig`, indexer.tokenProcessorConfig));
    const kb = c.rec(`${ip}.kvBlockIndexConfig`, indexer.kvBlockIndexConfig);
    if (kb) {
      const kp = `${ip}.kvBlockIndexConfig`;
      const redis = c.rec(`${kp}.redisConfig`, kb.redisConfig) ?? c.rec(`${kp}.valkeyConfig`, kb.valkeyConfig);
      if (redis) {
        const addr = c.str(`${kp}.redisConfig.address`, redis.address);
        if (addr !== undefined) {
          const url = /^rediss?:\/\//.test(addr) ? addr : `redis://${addr}`;
          if (/@/.test(url)) c.bad(`${kp}.redisConfig.address`, `${show(addr)} carries credentials; give host:port and put the password in the KVROUTE_REDIS_PASSWORD env`);
          else o.index = { backend: 'redis', url };
        }
      }
      if (kb.enableMetrics !== undefined) {
        c.bool(`${kp}.enableMetrics`, kb.enableMetrics);
        c.note(`${kp}.enableMetrics is accepted: kvroute always exports its index metrics (kvroute_index_*)`);
      }
      c.rest(kp, kb, ['redisConfig', 'valkeyConfig', 'enableMetrics'], 'the in-memory index is sized in bytes by --index-memory-bytes');
    }
    const tz = c.rec(`${ip}.tokenizersPoolConfig`, indexer.tokenizersPoolConfig);
    if (tz) {
      const tp = `${ip}.tokenizersPoolConfig`;
      const model = c.str(`${tp}.modelName`, tz.modelName);
      if (model !== undefined) {
        o.model = model;
        o.tokenizer = { ...o.tokenizer, hfRepo: model };
      }
      const workers = c.int(`${tp}.workersConcurrency`, tz.workersConcurrency, 1);
      if (workers !== undefined) o.tokenizer = { ...o.tokenizer, workers: Math.min(workers, 64) };
      const hf = c.rec(`${tp}.hf`, tz.hf);
      if (hf) {
        const dir = c.str(`${tp}.hf.tokenizersCacheDir`, hf.tokenizersCacheDir);
        if (dir !== undefined) o.tokenizer = { ...o.tokenizer, cacheDir: dir };
        c.rest(`${tp}.hf`, hf, ['tokenizersCacheDir'], 'the Hugging Face token comes from the HF_TOKEN env');
      }
      c.rest(tp, tz, ['modelName', 'workersConcurrency', 'hf'], 'not used by kvroute\'s tokenizer');
    }
    const scorer = c.rec(`${ip}.kvScorerConfig`, indexer.kvScorerConfig);
    const tiers = scorer?.backendConfigs;
    if (Array.isArray(tiers)) {
      const weights: Record<string, number> = {};
      tiers.forEach((t, i) => {
        const p = `${ip}.kvScorerConfig.backendConfigs.${i}`;
        if (!isRec(t) || typeof t.name !== 'string' || typeof t.weight !== 'number' || t.weight < 0) c.bad(p, `${show(t)} is not { name: <medium>, weight: <number ≥ 0> }`);
        else weights[t.name.toLowerCase()] = t.weight;
      });
      o.scheduling.tierWeights = weights;
    }
    c.rest(ip, indexer, ['tokenProcessorConfig', 'kvBlockIndexConfig', 'tokenizersPoolConfig', 'kvScorerConfig'], 'no kvroute equivalent');
  }
  const ev = c.rec(`${at}.kvEventsConfig`, params.kvEventsConfig);
  if (ev) {
    const ep = `${at}.kvEventsConfig`;
    const events: Rec = { ...o.events };
    const zmq = c.str(`${ep}.zmqEndpoint`, ev.zmqEndpoint);
    if (zmq !== undefined) {
      events.zmqBind = zmq;
      events.mode = 'bind';
    }
    const topic = ev.topicFilter;
    if (topic !== undefined) {
      if (typeof topic === 'string') events.topicFilter = topic;
      else c.bad(`${ep}.topicFilter`, `${show(topic)} is not a string (e.g. "kv@")`);
    }
    const conc = c.int(`${ep}.concurrency`, ev.concurrency, 1);
    if (conc !== undefined) events.concurrency = Math.min(conc, 1024);
    const discover = c.bool(`${ep}.discoverPods`, ev.discoverPods);
    if (discover === true) events.mode = 'connect';
    const pd = c.rec(`${ep}.podDiscoveryConfig`, ev.podDiscoveryConfig);
    if (pd) {
      const port = c.int(`${ep}.podDiscoveryConfig.socketPort`, pd.socketPort, 1);
      if (port !== undefined) events.podPublisherPort = port;
      c.rest(`${ep}.podDiscoveryConfig`, pd, ['socketPort'], 'kvroute finds pods through the pool');
    }
    o.events = events;
    c.rest(ep, ev, ['zmqEndpoint', 'topicFilter', 'concurrency', 'discoverPods', 'podDiscoveryConfig'], 'no kvroute equivalent');
  }
  if (params.speculativeIndexing !== undefined) c.note(`${at}.speculativeIndexing is accepted and ignored: kvroute indexes what the KV events report`);
  c.rest(at, params, ['tokenProcessorConfig', 'indexerConfig', 'kvEventsConfig', 'speculativeIndexing'], 'no kvroute equivalent');
}

/** Maps a parsed EndpointPickerConfig onto EppConfig fields; throws EppConfigError naming every bad field. */
export function mapEndpointPickerConfig(doc: unknown, source = 'EndpointPickerConfig'): EndpointPickerMapping {
  const c = new Collector();
  const fail = (): never => {
    throw new EppConfigError(`invalid ${source}:\n  - ${c.issues.join('\n  - ')}`, c.issues);
  };
  if (!isRec(doc)) {
    c.bad('(top level)', `${show(doc)} is not a mapping; write apiVersion: llm-d.ai/v1alpha1, kind: EndpointPickerConfig, plugins, schedulingProfiles`);
    return fail();
  }
  if (doc.kind !== EndpointPickerKind) c.bad('kind', `${show(doc.kind)} is not "${EndpointPickerKind}"`);
  if (!(EndpointPickerApiVersions as readonly string[]).includes(doc.apiVersion as string)) {
    c.bad('apiVersion', `${show(doc.apiVersion)} is not one of ${EndpointPickerApiVersions.join(', ')}`);
  }
  for (const k of Object.keys(doc)) if (!TOP_LEVEL.includes(k)) c.bad(k, `is not a field of EndpointPickerConfig; known: ${TOP_LEVEL.join(', ')}`);

  const overlay: EndpointPickerOverlay = { scheduling: { plugins: [], profiles: [] } };
  const known = knownEndpointPickerPluginTypes().join(', ');
  /** Declared plugins by name: their type and whether kvroute schedules with them. */
  const declared = new Map<string, { type: string; scheduling: boolean }>();
  const plugins = doc.plugins ?? [];
  if (!Array.isArray(plugins)) c.bad('plugins', `${show(plugins)} is not a list of { type, name?, parameters? }`);
  const pluginList = Array.isArray(plugins) ? plugins : [];
  let pdProfiles = { decode: 'decode', prefill: 'prefill' };
  const deciderRefs: { path: string; ref: string }[] = [];

  pluginList.forEach((p, i) => {
    const at = `plugins.${i}`;
    if (!isRec(p)) return c.bad(at, `${show(p)} is not a mapping { type, name?, parameters? }`);
    for (const k of Object.keys(p)) if (!['type', 'name', 'parameters'].includes(k)) c.bad(`${at}.${k}`, 'is not a plugin field; use type, name and parameters');
    const type = p.type;
    if (typeof type !== 'string' || type === '') return c.bad(`${at}.type`, `${show(type)} is not a plugin type; use one of ${known}`);
    const name = p.name === undefined ? type : c.str(`${at}.name`, p.name);
    if (name === undefined) return;
    if (declared.has(name)) c.bad(`${at}.name`, `plugin name "${name}" is used more than once; give each plugin a distinct name`);
    const params = p.parameters === undefined ? {} : c.rec(`${at}.parameters`, p.parameters);
    if (params === undefined) return;
    const pat = `${at}.parameters`;
    const wiring = Object.hasOwn(LLMD_WIRING_PLUGINS, type) ? LLMD_WIRING_PLUGINS[type] : undefined;
    if (wiring !== undefined) {
      declared.set(name, { type, scheduling: false });
      if (type === 'precise-prefix-cache-producer') mapPrecise(c, pat, params, overlay);
      else if (type === 'token-producer') {
        const model = c.str(`${pat}.modelName`, params.modelName);
        if (model !== undefined) {
          overlay.model = model;
          overlay.tokenizer = { ...overlay.tokenizer, hfRepo: model };
        }
        c.rest(pat, params, ['modelName'], wiring);
      }
      c.note(`plugin ${name} (${type}) is accepted and only reported: ${wiring}`);
      return;
    }
    const info = pluginType(type);
    if (info === undefined) return c.bad(`${at}.type`, `plugin type "${type}" is not known; use one of ${known}`);
    declared.set(name, { type, scheduling: info.kind !== 'profile-handler' && info.kind !== 'decider' });
    const spec: { type: string; name?: string; parameters?: Rec } = { type, ...(p.name !== undefined ? { name } : {}) };
    const keep = (keys: readonly string[]): void => {
      const kept: Rec = {};
      for (const k of keys) {
        if (params[k] === undefined) continue;
        const want = info.parameters[k];
        if (want !== undefined && !parameterOk(want, params[k])) c.bad(`${pat}.${k}`, `${show(params[k])} is not a ${want}`);
        else kept[k] = params[k];
      }
      if (Object.keys(kept).length > 0) spec.parameters = kept;
    };
    switch (type) {
      case 'precise-prefix-cache-scorer':
        mapPrecise(c, pat, params, overlay);
        break;
      case 'active-request-scorer':
        keep(['idleThreshold', 'maxBusyScore']);
        c.rest(pat, params, ['idleThreshold', 'maxBusyScore'], 'kvroute counts a request until its response ends');
        break;
      case 'prefix-based-pd-decider':
        keep(['nonCachedTokens']);
        c.rest(pat, params, ['nonCachedTokens'], 'kvroute decides P/D by the uncached prompt tokens only');
        break;
      case 'session-affinity-scorer':
        c.note(`plugin ${name} (session-affinity-scorer): kvroute keys sessions by the x-session-id request header and remembers the pod itself (llm-d sends the pod back in x-session-token)`);
        c.rest(pat, params, [], 'no kvroute equivalent');
        break;
      case 'pd-profile-handler':
      case 'disagg-profile-handler': {
        const threshold = c.int(`${pat}.threshold`, params.threshold);
        if (threshold !== undefined) overlay.scheduling.plugins.push({ type: 'prefix-based-pd-decider', name: `${name}-threshold`, parameters: { nonCachedTokens: threshold } });
        const decodeName = c.str(`${pat}.decodeProfile`, params.decodeProfile);
        const prefillName = c.str(`${pat}.prefillProfile`, params.prefillProfile);
        const profiles = c.rec(`${pat}.profiles`, params.profiles);
        pdProfiles = {
          decode: decodeName ?? c.str(`${pat}.profiles.decode`, profiles?.decode) ?? pdProfiles.decode,
          prefill: prefillName ?? c.str(`${pat}.profiles.prefill`, profiles?.prefill) ?? pdProfiles.prefill,
        };
        const deciders = c.rec(`${pat}.deciders`, params.deciders);
        if (deciders) {
          for (const [k, v] of Object.entries(deciders)) {
            const ref = c.str(`${pat}.deciders.${k}`, v);
            if (ref !== undefined) deciderRefs.push({ path: `${pat}.deciders.${k}`, ref });
          }
        }
        c.rest(pat, params, ['threshold', 'decodeProfile', 'prefillProfile', 'profiles', 'deciders'], 'kvroute sends P/D traffic through the routing sidecar named in the prefill header');
        break;
      }
      default: {
        const accepted = Object.keys(info.parameters);
        keep(accepted);
        c.rest(pat, params, accepted, `${type} has no such parameter in kvroute`);
      }
    }
    overlay.scheduling.plugins.push(spec as PluginSpec);
  });

  for (const d of deciderRefs) {
    const target = declared.get(d.ref);
    if (target === undefined || pluginType(target.type)?.kind !== 'decider') c.bad(d.path, `"${d.ref}" names no P/D decider in plugins; declare { type: prefix-based-pd-decider, name: ${d.ref} }`);
  }

  const refOk = (path: string, ref: unknown): string | undefined => {
    const r = c.str(path, ref);
    if (r !== undefined && !declared.has(r)) c.bad(path, `"${r}" names no plugin in plugins; declare it there (its name defaults to its type)`);
    return r;
  };

  const profiles = doc.schedulingProfiles;
  if (profiles !== undefined && !Array.isArray(profiles)) c.bad('schedulingProfiles', `${show(profiles)} is not a list of { name, plugins: [{ pluginRef, weight? }] }`);
  if (Array.isArray(profiles) && profiles.length > 0) {
    profiles.forEach((prof, i) => {
      const at = `schedulingProfiles.${i}`;
      if (!isRec(prof)) return c.bad(at, `${show(prof)} is not a mapping { name, plugins }`);
      for (const k of Object.keys(prof)) if (!['name', 'plugins'].includes(k)) c.bad(`${at}.${k}`, 'is not a profile field; use name and plugins');
      const pname = c.str(`${at}.name`, prof.name);
      if (!Array.isArray(prof.plugins)) return c.bad(`${at}.plugins`, `${show(prof.plugins)} is not a list of { pluginRef, weight? }`);
      const refs: { pluginRef: string; weight?: number }[] = [];
      prof.plugins.forEach((r, j) => {
        const rp = `${at}.plugins.${j}`;
        if (!isRec(r)) return c.bad(rp, `${show(r)} is not a mapping { pluginRef, weight? }`);
        for (const k of Object.keys(r)) if (!['pluginRef', 'weight'].includes(k)) c.bad(`${rp}.${k}`, 'is not a profile plugin field; use pluginRef and weight');
        const ref = refOk(`${rp}.pluginRef`, r.pluginRef);
        if (r.weight !== undefined && (typeof r.weight !== 'number' || !Number.isFinite(r.weight) || r.weight < 0)) c.bad(`${rp}.weight`, `${show(r.weight)} is not a number ≥ 0`);
        if (ref === undefined || !declared.has(ref)) return;
        if (!declared.get(ref)!.scheduling) {
          c.note(`${rp}: "${ref}" is not a filter, scorer or picker in kvroute and is left out of profile ${pname ?? i}`);
          return;
        }
        refs.push({ pluginRef: ref, ...(typeof r.weight === 'number' ? { weight: r.weight } : {}) });
      });
      if (pname === undefined) return;
      const multi = profiles.length > 1;
      const name = multi && pname === pdProfiles.decode ? 'decode' : multi && pname === pdProfiles.prefill ? 'prefill' : pname;
      overlay.scheduling.profiles.push({ name, plugins: refs });
    });
  } else if (pluginList.length > 0) {
    // llm-d: without profiles, one default profile runs every declared filter, scorer and picker
    const refs = [...declared].filter(([, d]) => d.scheduling).map(([n]) => ({ pluginRef: n }));
    overlay.scheduling.profiles.push({ name: 'default', plugins: refs });
  }
  const names = overlay.scheduling.profiles.map((p) => p.name);
  if (names.length > 2) c.bad('schedulingProfiles', `has ${names.length} profiles; kvroute runs one profile, or two for P/D (decode and prefill)`);
  if (names.length === 2 && !(names.includes('decode') && names.includes('prefill'))) {
    c.bad('schedulingProfiles', `two profiles must be P/D's decode and prefill profiles (named so, or named by the profile handler's decodeProfile/prefillProfile); got ${JSON.stringify(names)}`);
  }
  if (pluginList.length === 0 && (profiles === undefined || (Array.isArray(profiles) && profiles.length === 0))) {
    overlay.scheduling.plugins = LLMD_DEFAULT_SCHEDULING.plugins.map((p) => ({ ...p }));
    overlay.scheduling.profiles = LLMD_DEFAULT_SCHEDULING.profiles.map((p) => ({ ...p, plugins: p.plugins.map((r) => ({ ...r })) }));
    c.note('no plugins: llm-d\'s default scheduling (queue-scorer 2, kv-cache-utilization-scorer 2, prefix-cache-scorer 3, max-score-picker)');
  }

  const dl = c.rec('dataLayer', doc.dataLayer);
  if (dl) {
    const sources = dl.sources ?? [];
    if (!Array.isArray(sources)) c.bad('dataLayer.sources', `${show(sources)} is not a list of { pluginRef, extractors }`);
    else
      sources.forEach((s, i) => {
        const at = `dataLayer.sources.${i}`;
        if (!isRec(s)) return c.bad(at, `${show(s)} is not a mapping { pluginRef, extractors }`);
        refOk(`${at}.pluginRef`, s.pluginRef);
        const ex = s.extractors ?? [];
        if (!Array.isArray(ex)) return c.bad(`${at}.extractors`, `${show(ex)} is not a list of { pluginRef }`);
        ex.forEach((e, j) => (isRec(e) ? refOk(`${at}.extractors.${j}.pluginRef`, e.pluginRef) : c.bad(`${at}.extractors.${j}`, `${show(e)} is not a mapping { pluginRef }`)));
      });
    c.note('dataLayer is accepted and only checked: kvroute wires its metric scraping and KV events itself');
  }
  const gates = doc.featureGates;
  if (gates !== undefined) {
    if (!Array.isArray(gates) || gates.some((g) => typeof g !== 'string')) c.bad('featureGates', `${show(gates)} is not a list of names`);
    else for (const g of gates) c.note(`featureGates: "${g}" is accepted and ignored (kvroute has no llm-d feature gates)`);
  }
  const parser = c.rec('parser', doc.parser);
  if (parser) {
    refOk('parser.pluginRef', parser.pluginRef);
    c.note('parser is accepted: kvroute parses OpenAI request bodies itself');
  }
  const sat = c.rec('saturationDetector', doc.saturationDetector);
  if (sat) {
    const admission: Rec = {};
    if (sat.queueDepthThreshold !== undefined) {
      const q = c.int('saturationDetector.queueDepthThreshold', sat.queueDepthThreshold, 1);
      if (q !== undefined) admission.queueDepthThreshold = q;
    }
    if (sat.kvCacheUtilThreshold !== undefined) {
      const k = sat.kvCacheUtilThreshold;
      if (typeof k !== 'number' || k <= 0 || k > 1) c.bad('saturationDetector.kvCacheUtilThreshold', `${show(k)} is not a number in (0, 1]`);
      else admission.kvCacheUtilThreshold = k;
    }
    overlay.admission = admission;
    c.rest('saturationDetector', sat, ['queueDepthThreshold', 'kvCacheUtilThreshold'], 'kvroute ages metrics by --metrics-staleness-threshold');
  }
  if (doc.flowControl !== undefined) c.note('flowControl is accepted and ignored: kvroute admits or sheds each request at once (admission)');
  if (c.issues.length > 0) fail();
  return { overlay, notes: c.notes };
}
