/** Security invariants: no secret material in manifests; Pod Security "restricted" for EPP and Redis. */
import {
  allContainers,
  isEppPod,
  isRecord,
  isRedisPod,
  podTemplates,
  rec,
  recs,
  ref,
  violation,
  type Json,
  type Manifest,
  type PodTemplate,
  type Violation,
} from './model.js';

/**
 * Env var names that must come from a Secret (valueFrom), never a literal `value`: a name segment
 * (between `_`) TOKEN, PASSWORD, PASSWD, SECRET, APIKEY/API_KEY or CREDENTIAL(S). Segments, so that
 * TOKENIZERS_PARALLELISM or MAX_TOKENS are not mistaken for credentials.
 */
export const SECRET_ENV_NAME = /(^|_)(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|CREDENTIALS?)(_|$)/i;

/** Strings that look like credentials wherever they appear. */
const SECRET_PATTERNS: readonly [RegExp, string][] = [
  [/\bhf_[A-Za-z0-9]{30,}\b/, 'a Hugging Face token (hf_...)'],
  [/\bAKIA[0-9A-Z]{16}\b/, 'an AWS access key id'],
  [/\bsk-[A-Za-z0-9_-]{20,}\b/, 'an API secret key (sk-...)'],
  [/\bgh[pousr]_[A-Za-z0-9]{30,}\b/, 'a GitHub token'],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a PEM private key'],
  [/[a-z][a-z0-9+.-]*:\/\/[^/\s:@"',{}]*:[^/\s@$"',{}]+@/i, 'a URL with an embedded password'],
  [/--requirepass[= ]+(?!["']?\$)[^\s"']+/, 'a literal redis --requirepass'],
];

function scanStrings(v: unknown, path: string, visit: (s: string, path: string) => void): void {
  if (typeof v === 'string') visit(v, path);
  else if (Array.isArray(v)) v.forEach((x, i) => scanStrings(x, `${path}/${i}`, visit));
  else if (isRecord(v)) for (const [k, x] of Object.entries(v)) scanStrings(x, `${path}/${k}`, visit);
}

/**
 * No secret values in the manifests: no Secret with data/stringData, no env var named like a
 * credential with a literal value, and no string anywhere that looks like a token, key or password.
 */
export function noSecretLiterals(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'noSecretLiterals';
  for (const o of objs) {
    if (o.kind === 'Secret') {
      for (const field of ['data', 'stringData']) {
        if (Object.keys(rec(o[field])).length > 0) out.push(violation(inv, ref(o), `Secret carries ${field} (${Object.keys(rec(o[field])).join(', ')}); reference a Secret created outside dist/ instead`));
      }
    }
    scanStrings(o, '', (s, path) => {
      for (const [re, what] of SECRET_PATTERNS) {
        if (re.test(s)) out.push(violation(inv, ref(o), `${path} contains ${what}`));
      }
    });
  }
  for (const c of allContainers(objs)) {
    for (const e of recs(c.container.env)) {
      if (typeof e.name === 'string' && SECRET_ENV_NAME.test(e.name) && e.value !== undefined) {
        out.push(violation(inv, c.owner, `container ${JSON.stringify(c.container.name)} (${c.path}) env ${e.name} has a literal value; use valueFrom.secretKeyRef`));
      }
    }
  }
  return out;
}

const RESTRICTED_VOLUMES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);

/** Pod Security Standard "restricted" violations of one pod template. */
export function restrictedViolations(pod: PodTemplate): string[] {
  const out: string[] = [];
  const ps = rec(pod.spec.securityContext);
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod.spec[f] === true) out.push(`spec.${f} is true`);
  for (const v of recs(pod.spec.volumes)) {
    const type = Object.keys(v).find((k) => k !== 'name');
    if (type !== undefined && !RESTRICTED_VOLUMES.has(type)) out.push(`volume ${JSON.stringify(v.name)} has type ${type}`);
  }
  if (ps.runAsUser === 0) out.push('pod securityContext.runAsUser is 0');
  const containers: [string, Json][] = [
    ...recs(pod.spec.initContainers).map((c): [string, Json] => ['initContainers', c]),
    ...recs(pod.spec.containers).map((c): [string, Json] => ['containers', c]),
  ];
  for (const [part, c] of containers) {
    const name = `${part} ${JSON.stringify(c.name)}`;
    const sc = rec(c.securityContext);
    if (sc.privileged === true) out.push(`${name} is privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${name} securityContext.allowPrivilegeEscalation is ${JSON.stringify(sc.allowPrivilegeEscalation)}, must be false`);
    if ((sc.runAsNonRoot ?? ps.runAsNonRoot) !== true) out.push(`${name} runAsNonRoot is not true (container or pod securityContext)`);
    if ((sc.runAsUser ?? ps.runAsUser) === 0) out.push(`${name} runs as UID 0`);
    const caps = rec(sc.capabilities);
    if (!(Array.isArray(caps.drop) && caps.drop.includes('ALL'))) out.push(`${name} securityContext.capabilities.drop does not include ALL`);
    const added = Array.isArray(caps.add) ? caps.add.filter((c2) => c2 !== 'NET_BIND_SERVICE') : [];
    if (added.length > 0) out.push(`${name} adds capabilities ${JSON.stringify(added)}`);
    const seccomp = rec(sc.seccompProfile ?? ps.seccompProfile).type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${name} seccompProfile.type is ${JSON.stringify(seccomp)}, must be RuntimeDefault (container or pod securityContext)`);
    for (const p of recs(c.ports)) if (p.hostPort !== undefined && p.hostPort !== 0) out.push(`${name} uses hostPort ${String(p.hostPort)}`);
  }
  return out;
}

/** Every EPP and Redis pod template meets Pod Security "restricted"; an EPP pod exists at all. */
export function eppAndRedisRestricted(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'eppAndRedisRestricted';
  const pods = podTemplates(objs).filter((p) => isEppPod(p) || isRedisPod(p));
  if (!pods.some(isEppPod)) out.push(violation(inv, 'EPP', 'no EPP pod template found (a container exposing port 9002)'));
  for (const pod of pods) {
    for (const m of restrictedViolations(pod)) out.push(violation(inv, pod.owner, `Pod Security restricted: ${m}`));
  }
  return out;
}
