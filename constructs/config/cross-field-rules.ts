/**
 * Cross-field rules of the deployment config (what the zod schema alone cannot express). Each problem
 * names the field, its value and the fix.
 */
import type { DeploymentConfig } from './deployment-config.js';

const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/** One violated rule. */
export interface Problem {
  path: string;
  value: unknown;
  message: string;
}

/** Every violated cross-field rule of a schema-valid config. */
export function crossFieldProblems(c: DeploymentConfig): Problem[] {
  const p: Problem[] = [];
  if (c.model.name.trim() === '') {
    p.push({ path: 'model.name', value: c.model.name, message: 'model name is empty; set the Hugging Face repo id, e.g. "meta-llama/Llama-3.2-1B"' });
  }
  if (!isPowerOfTwo(c.kvCache.blockSize)) {
    p.push({
      path: 'kvCache.blockSize',
      value: c.kvCache.blockSize,
      message: 'block size must be a power of two (vLLM --block-size); use 16, 32 or 64',
    });
  }
  const algo = hashAlgoProblem(c);
  if (algo) p.push(algo);
  if (c.decode.replicas < 1) {
    p.push({ path: 'decode.replicas', value: c.decode.replicas, message: 'at least one decode pod is needed to serve traffic; set decode.replicas to 1 or more' });
  }
  if (c.pd.enabled && c.prefill.replicas < 1) {
    p.push({
      path: 'prefill.replicas',
      value: c.prefill.replicas,
      message: 'P/D disaggregation is on (pd.enabled: true) but there are no prefill pods; set prefill.replicas ≥ 1 or pd.enabled: false',
    });
  }
  for (const role of ['decode', 'prefill'] as const) {
    if (role === 'prefill' && !c.pd.enabled) continue;
    if (c[role].gpusPerPod !== c.model.tensorParallelSize) {
      p.push({
        path: `${role}.gpusPerPod`,
        value: c[role].gpusPerPod,
        message: `GPUs per pod must equal model.tensorParallelSize (${c.model.tensorParallelSize}): vLLM shards the model over exactly that many GPUs; set ${role}.gpusPerPod: ${c.model.tensorParallelSize} or model.tensorParallelSize: ${c[role].gpusPerPod}`,
      });
    }
  }
  if (c.epp.replicas > 1 && !c.redis.enabled && c.epp.eventsMode === 'bind') {
    p.push({
      path: 'epp.replicas',
      value: c.epp.replicas,
      message:
        'several EPP replicas with the in-memory index and eventsMode "bind" would each see the KV events of only some pods; set redis.enabled: true (shared index), or epp.eventsMode: "connect" (every replica subscribes to every pod), or epp.replicas: 1',
    });
  }
  if (c.workloadMode === 'modelservice' && c.model.extraArgs.some((a) => a.includes('{{'))) {
    p.push({ path: 'model.extraArgs', value: c.model.extraArgs, message: 'ModelService treats "{{" as a template; remove template markers from model.extraArgs' });
  }
  return p;
}

/** vLLM version of an official `vllm/vllm-openai:vX.Y.Z` image; undefined for other images (llm-d images carry their own versions). */
export function vllmImageVersion(image: string): [number, number, number] | undefined {
  const m = /(^|\/)vllm-openai:v?(\d+)\.(\d+)\.(\d+)/.exec(image);
  return m ? [Number(m[2]), Number(m[3]), Number(m[4])] : undefined;
}

const atLeast = (v: readonly number[], min: readonly number[]): boolean => {
  for (let i = 0; i < min.length; i++) if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i];
  return true;
};

/** vLLM offers sha256_cbor from v0.10.2 on, and dropped sha256_cbor_64bit there. */
function hashAlgoProblem(c: DeploymentConfig): Problem | undefined {
  const v = vllmImageVersion(c.images.vllm);
  if (!v) return undefined;
  const shown = v.join('.');
  if (atLeast(v, [0, 10, 2]) && c.kvCache.hashAlgo === 'sha256_cbor_64bit') {
    return { path: 'kvCache.hashAlgo', value: c.kvCache.hashAlgo, message: `vLLM ${shown} (images.vllm) no longer offers sha256_cbor_64bit; use hashAlgo: "sha256_cbor"` };
  }
  if (!atLeast(v, [0, 10, 2]) && c.kvCache.hashAlgo === 'sha256_cbor') {
    return { path: 'kvCache.hashAlgo', value: c.kvCache.hashAlgo, message: `vLLM ${shown} (images.vllm) has no sha256_cbor (added in v0.10.2); use hashAlgo: "sha256_cbor_64bit" or a newer vLLM image` };
  }
  return undefined;
}

