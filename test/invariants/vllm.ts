/**
 * vLLM ↔ EPP agreement: block size, hash algorithm, hash seed, model name, the KV-events endpoint
 * and topic, and GPU resources.
 */
import { EppPorts } from '@kvroute/epp/contract';
import {
  allContainers,
  commandLine,
  envVar,
  eppConfigs,
  isEppPod,
  isRecord,
  isVllmContainer,
  labelSelectorSelects,
  ns,
  podPorts,
  podTemplates,
  rec,
  recs,
  ref,
  serviceForHost,
  spec,
  strMap,
  mapSelects,
  resolveTargetPort,
  selectedPods,
  violation,
  flagValues,
  type ContainerRef,
  type FoundEppConfig,
  type Manifest,
  type Violation,
} from './model.js';

/** The vLLM server containers (init-only containers excluded). */
export function vllmContainers(objs: readonly Manifest[]): ContainerRef[] {
  return allContainers(objs).filter((c) => !c.initOnly && isVllmContainer(c.container));
}

function where(c: ContainerRef): string {
  return `container ${JSON.stringify(c.container.name)} (${c.path})`;
}

/** The one EPP config every vLLM pod must agree with; violations when it is missing or ambiguous. */
function theEppConfig(objs: readonly Manifest[], inv: string, out: Violation[]): FoundEppConfig | undefined {
  const { found, errors } = eppConfigs(objs);
  out.push(...errors.map((e) => ({ ...e, invariant: inv })));
  if (found.length === 0) {
    out.push(violation(inv, 'EPP ConfigMap', 'no ConfigMap holds an EPP config (a data value with kind: EppConfig), so vLLM settings cannot be checked'));
    return undefined;
  }
  const key = (f: FoundEppConfig): string => JSON.stringify([f.config.model, f.config.blockSize, f.config.hashAlgo, f.config.hashSeed]);
  for (const f of found.slice(1)) {
    if (key(f) !== key(found[0])) out.push(violation(inv, ref(f.configMap), `EPP config ${key(f)} disagrees with ${ref(found[0].configMap)} ${key(found[0])} (model, blockSize, hashAlgo, hashSeed)`));
  }
  return found[0];
}

/** Served model names of a vLLM command line: --served-model-name values, else the model argument. */
export function servedModelNames(tokens: readonly string[]): string[] {
  const i = tokens.indexOf('--served-model-name');
  if (i >= 0) {
    const names: string[] = [];
    for (let j = i + 1; j < tokens.length && !tokens[j].startsWith('--'); j++) names.push(tokens[j]);
    return names;
  }
  const eq = flagValues(tokens, '--served-model-name');
  if (eq.length > 0) return eq;
  const serve = tokens.findIndex((t, k) => /(^|\/)vllm$/.test(t) && tokens[k + 1] === 'serve');
  if (serve >= 0 && serve + 2 < tokens.length && !tokens[serve + 2].startsWith('--')) return [tokens[serve + 2]];
  return flagValues(tokens, '--model');
}

/**
 * vLLM `--block-size`, `--prefix-caching-hash-algo`, env PYTHONHASHSEED and the served model name
 * equal the EPP config's blockSize, hashAlgo, hashSeed and model; prefix caching is not disabled.
 */
export function vllmMatchesEppConfig(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'vllmMatchesEppConfig';
  const vllm = vllmContainers(objs);
  if (vllm.length === 0) return [violation(inv, 'vLLM', 'no vLLM container found (by `vllm serve` command line or a vllm image)')];
  const found = theEppConfig(objs, inv, out);
  if (found === undefined) return out;
  const cfg = found.config;
  for (const c of vllm) {
    const tokens = commandLine(c.container);
    const check = (flag: string, expected: string, field: string): void => {
      const v = flagValues(tokens, flag);
      if (v.length !== 1 || v[0] !== expected) {
        out.push(violation(inv, c.owner, `${where(c)} ${flag} is ${v.length === 0 ? 'not set' : JSON.stringify(v)}; expected ${JSON.stringify(expected)} = EPP config ${field} (${ref(found.configMap)})`));
      }
    };
    check('--block-size', String(cfg.blockSize), 'blockSize');
    check('--prefix-caching-hash-algo', cfg.hashAlgo, 'hashAlgo');
    if (flagValues(tokens, '--no-enable-prefix-caching').length > 0) out.push(violation(inv, c.owner, `${where(c)} disables prefix caching (--no-enable-prefix-caching)`));
    const seed = envVar(c.container, 'PYTHONHASHSEED');
    if (seed === undefined || seed.value !== cfg.hashSeed) {
      out.push(violation(inv, c.owner, `${where(c)} env PYTHONHASHSEED is ${seed === undefined ? 'not set' : JSON.stringify(seed.value ?? seed.valueFrom)}; expected literal ${JSON.stringify(cfg.hashSeed)} = EPP config hashSeed`));
    }
    let served = servedModelNames(tokens);
    // A ModelService's operator passes spec.routing.modelName as the served name when args do not.
    if (served.length === 0 && c.ownerObj.kind === 'ModelService') {
      const m = rec(spec(c.ownerObj).routing).modelName;
      if (typeof m === 'string') served = [m];
    }
    if (!served.includes(cfg.model)) {
      out.push(violation(inv, c.owner, `${where(c)} serves ${JSON.stringify(served)}; expected ${JSON.stringify(cfg.model)} = EPP config model (the OpenAI "model" field the EPP routes on)`));
    }
  }
  return out;
}

/** Parse `tcp://host:port`. */
function tcpEndpoint(s: unknown): { host: string; port: number } | undefined {
  if (typeof s !== 'string') return undefined;
  const m = /^tcp:\/\/(\*|\[[^\]]+\]|[^:/]+):(\d+)$/.exec(s);
  return m ? { host: m[1], port: Number(m[2]) } : undefined;
}

/**
 * `--kv-events-config` on every vLLM container: events on, publisher zmq, topic
 * `kv@$(POD_IP):<serving port>@<model>` (POD_IP from status.podIP; the port is a container port of
 * the pod and a targetPort of every InferencePool that selects it), and an endpoint that matches
 * the EPP's events mode: connect to the EPP Service's port that reaches the EPP's ZMQ bind port, or
 * bind `tcp://*:<podPublisherPort>` on the pod when the EPP connects.
 */
export function kvEventsReachEpp(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'kvEventsReachEpp';
  const vllm = vllmContainers(objs);
  if (vllm.length === 0) return out;
  const found = theEppConfig(objs, inv, out);
  if (found === undefined) return out;
  const cfg = found.config;
  const bindPort = tcpEndpoint(cfg.events.zmqBind)?.port;
  if (cfg.events.mode === 'bind') {
    const eppPods = podTemplates(objs).filter(isEppPod);
    for (const pod of eppPods) {
      if (!podPorts(pod).some((p) => p.number === bindPort)) out.push(violation(inv, pod.owner, `EPP binds ZMQ on ${cfg.events.zmqBind} but declares no container port ${String(bindPort)}`));
    }
  }
  for (const c of vllm) {
    const raw = flagValues(commandLine(c.container), '--kv-events-config');
    if (raw.length !== 1) {
      out.push(violation(inv, c.owner, `${where(c)} has ${raw.length === 0 ? 'no' : 'several'} --kv-events-config; the EPP index would never learn this pod's blocks`));
      continue;
    }
    let ev: unknown;
    try {
      ev = JSON.parse(raw[0]);
    } catch (e) {
      out.push(violation(inv, c.owner, `${where(c)} --kv-events-config is not JSON (${(e as Error).message}): ${raw[0]}`));
      continue;
    }
    if (!isRecord(ev)) {
      out.push(violation(inv, c.owner, `${where(c)} --kv-events-config is not a JSON object`));
      continue;
    }
    if (ev.enable_kv_cache_events !== true) out.push(violation(inv, c.owner, `${where(c)} enable_kv_cache_events is ${JSON.stringify(ev.enable_kv_cache_events)}, expected true`));
    if (ev.publisher !== 'zmq') out.push(violation(inv, c.owner, `${where(c)} publisher is ${JSON.stringify(ev.publisher)}, expected "zmq"`));
    // Topic.
    const topic = typeof ev.topic === 'string' ? ev.topic : '';
    const m = /^kv@(.+):(\d+)@(.+)$/.exec(topic);
    if (!m) {
      out.push(violation(inv, c.owner, `${where(c)} topic ${JSON.stringify(ev.topic)} is not kv@<ip>:<port>@<model>`));
    } else {
      const [, ip, portStr, model] = m;
      if (!topic.startsWith(cfg.events.topicFilter)) out.push(violation(inv, c.owner, `${where(c)} topic ${topic} does not start with the EPP's topicFilter ${cfg.events.topicFilter}`));
      if (model !== cfg.model) out.push(violation(inv, c.owner, `${where(c)} topic model ${JSON.stringify(model)} differs from EPP config model ${JSON.stringify(cfg.model)}`));
      const ipVar = /^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(ip);
      const env = ipVar ? envVar(c.container, ipVar[1]) : undefined;
      if (!ipVar || rec(rec(env?.valueFrom).fieldRef).fieldPath !== 'status.podIP') {
        out.push(violation(inv, c.owner, `${where(c)} topic ip ${JSON.stringify(ip)} must be $(VAR) with env VAR from fieldRef status.podIP`));
      }
      const port = Number(portStr);
      if (c.pod !== undefined) {
        if (c.pod.portsKnown && !podPorts(c.pod).some((p) => p.number === port)) {
          out.push(violation(inv, c.owner, `${where(c)} topic port ${port} is not a container port of the pod (has ${JSON.stringify(podPorts(c.pod))})`));
        }
        const pod = c.pod;
        for (const pool of objs.filter((o) => o.kind === 'InferencePool' && ns(o) === pod.namespace && labelSelectorSelects(spec(o).selector, pod.labels))) {
          const tps = recs(spec(pool).targetPorts).map((t) => t.number);
          if (!tps.includes(port)) out.push(violation(inv, c.owner, `${where(c)} topic port ${port} is not a targetPort of ${ref(pool)} ${JSON.stringify(tps)}: the EPP could not match events to the pool endpoint`));
        }
      }
    }
    // Endpoint.
    const ep = tcpEndpoint(ev.endpoint);
    if (ep === undefined) {
      out.push(violation(inv, c.owner, `${where(c)} endpoint ${JSON.stringify(ev.endpoint)} is not tcp://host:port`));
      continue;
    }
    if (cfg.events.mode === 'bind') {
      const svc = serviceForHost(objs, ep.host, ns(c.ownerObj));
      const svcPods = svc === undefined ? [] : selectedPods(objs, ns(svc), (l) => mapSelects(strMap(spec(svc).selector), l));
      const sp = svc === undefined ? undefined : recs(spec(svc).ports).find((p) => p.port === ep.port);
      if (svc === undefined || !svcPods.some(isEppPod)) {
        out.push(violation(inv, c.owner, `${where(c)} endpoint host ${ep.host} is not the EPP Service (the EPP binds ${cfg.events.zmqBind})`));
      } else if (sp === undefined || !svcPods.filter(isEppPod).every((pod) => resolveTargetPort(sp, pod) === bindPort)) {
        out.push(violation(inv, c.owner, `${where(c)} endpoint port ${ep.port} of ${ref(svc)} does not reach the EPP's ZMQ bind port ${String(bindPort)} (EppPorts.zmq = ${EppPorts.zmq})`));
      }
    } else if (ep.host !== '*' || ep.port !== cfg.events.podPublisherPort) {
      out.push(violation(inv, c.owner, `${where(c)} endpoint ${JSON.stringify(ev.endpoint)}: the EPP connects to pods (events.mode connect) on port ${cfg.events.podPublisherPort}, so vLLM must bind tcp://*:${cfg.events.podPublisherPort}`));
    }
  }
  return out;
}

const isGpuResource = (k: string): boolean => /(^|\/)gpu$/.test(k);

/**
 * GPU requests equal limits on every container that asks for GPUs; every vLLM server container asks
 * for at least one, and as many as tensor × pipeline parallelism when those flags are set.
 */
export function gpuRequestsEqualLimits(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'gpuRequestsEqualLimits';
  for (const c of allContainers(objs)) {
    const res = rec(c.container.resources);
    const req = rec(res.requests);
    const lim = rec(res.limits);
    const keys = new Set([...Object.keys(req), ...Object.keys(lim)].filter(isGpuResource));
    const mismatched = new Set<string>();
    for (const k of keys) {
      if (req[k] === undefined || lim[k] === undefined || String(req[k]) !== String(lim[k])) {
        mismatched.add(k);
        out.push(violation(inv, c.owner, `${where(c)} ${k} requests ${JSON.stringify(req[k])} != limits ${JSON.stringify(lim[k])}; set both to the same count`));
      }
    }
    if (c.initOnly || !isVllmContainer(c.container)) continue;
    if (keys.size === 0) {
      out.push(violation(inv, c.owner, `${where(c)} is a vLLM server but requests no GPU (nvidia.com/gpu)`));
      continue;
    }
    const tokens = commandLine(c.container);
    // A ModelService carries tensor parallelism in spec.<role>.parallelism.tensor.
    const role = /^\/spec\/([^/]+)\//.exec(c.path)?.[1] ?? '';
    const msTensor = c.ownerObj.kind === 'ModelService' ? rec(rec(spec(c.ownerObj)[role]).parallelism).tensor : undefined;
    const tp = Number(flagValues(tokens, '--tensor-parallel-size')[0] ?? flagValues(tokens, '-tp')[0] ?? msTensor ?? 1);
    const pp = Number(flagValues(tokens, '--pipeline-parallel-size')[0] ?? flagValues(tokens, '-pp')[0] ?? 1);
    for (const k of keys) {
      if (mismatched.has(k)) continue;
      const n = Number(lim[k] ?? req[k]);
      if (!(n >= 1)) out.push(violation(inv, c.owner, `${where(c)} ${k} is ${JSON.stringify(lim[k] ?? req[k])}; a vLLM server needs at least 1`));
      else if (n !== tp * pp) out.push(violation(inv, c.owner, `${where(c)} ${k} is ${n} but --tensor-parallel-size × --pipeline-parallel-size is ${tp * pp}`));
    }
  }
  return out;
}


/**
 * ModelService init containers are classic init containers (the CRD's container type has no
 * restartPolicy, so they cannot be native sidecars): one that runs a server (a `--port` flag, e.g.
 * the llm-d routing sidecar) never exits and the pod never starts. Only judged without a
 * baseConfigMapRef (a BaseConfig template could make it a sidecar).
 */
export function modelServiceInitContainersExit(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  for (const o of objs.filter((x) => x.kind === 'ModelService')) {
    if (spec(o).baseConfigMapRef !== undefined) continue;
    for (const role of ['decode', 'prefill', 'endpointPicker']) {
      recs(rec(spec(o)[role]).initContainers).forEach((c, i) => {
        const tokens = commandLine(c);
        if (flagValues(tokens, '--port').length > 0 || isVllmContainer(c)) {
          out.push(violation('modelServiceInitContainersExit', ref(o), `spec.${role}.initContainers[${i}] ${JSON.stringify(c.name)} runs a server (${tokens.find((t) => t.startsWith('--port')) ?? 'vllm'}) but ModelService init containers are plain init containers that must exit: the ${role} pods would stay in Init forever; move it to containers or use a BaseConfig that makes it a native sidecar (restartPolicy: Always)`));
        }
      });
    }
  }
  return out;
}

/** Env vars the llm-d ModelService operator sets on a `mountModelVolume: true` container for an hf:// model. */
const OPERATOR_HF_ENV = ['HF_TOKEN', 'HF_HOME'];

/**
 * The llm-d ModelService operator REPLACES the env of every container with `mountModelVolume: true`
 * (llm-d-model-service internal/controller/utils.go convertToContainerSliceWithURIInfo:
 * `containerSlice[i].Env = getEnvsForContainer(...)`, which yields only HF_TOKEN and HF_HOME for
 * hf:// URIs and nothing for pvc:// / oci://). Any other env var on such a container never reaches
 * the pod: PYTHONHASHSEED (hash alignment with the EPP) and POD_IP (the KV-event topic) included.
 */
export function modelServiceEnvSurvivesOperator(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  for (const o of objs.filter((x) => x.kind === 'ModelService')) {
    const uri = String(rec(spec(o).modelArtifacts).uri ?? '');
    const kept = uri.startsWith('hf://') ? OPERATOR_HF_ENV : [];
    for (const role of ['decode', 'prefill']) {
      for (const part of ['initContainers', 'containers']) {
        recs(rec(spec(o)[role])[part]).forEach((c, i) => {
          if (c.mountModelVolume !== true) return;
          const dropped = recs(c.env).map((e) => String(e.name)).filter((n) => !kept.includes(n));
          if (dropped.length === 0) return;
          const args = commandLine(c).join(' ');
          const consequences = [
            dropped.includes('PYTHONHASHSEED') ? 'PYTHONHASHSEED unset: vLLM block hashes no longer match the EPP' : '',
            ...dropped.filter((n) => args.includes(`$(${n})`)).map((n) => `$(${n}) in args is left unexpanded`),
          ].filter((s) => s !== '');
          out.push(
            violation(
              'modelServiceEnvSurvivesOperator',
              ref(o),
              `spec.${role}.${part}[${i}] ${JSON.stringify(c.name)} has mountModelVolume: true, so the operator replaces its env with [${kept.join(', ')}] and drops ${JSON.stringify(dropped)}${consequences.length > 0 ? ` (${consequences.join('; ')})` : ''}; set mountModelVolume: false (and pass HF_TOKEN by secretKeyRef) or provide a BaseConfig`,
            ),
          );
        });
      }
    }
  }
  return out;
}
