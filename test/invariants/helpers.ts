/** Small helpers for invariant tests: mutate a fresh fixture, run one invariant, read messages. */
import { get, miniDeployment, type Obj } from './fixtures.js';
import type { Invariant, Violation } from './model.js';

/** Mutable view of a nested field, for breaking fixtures. */
export function at(obj: unknown, ...path: (string | number)[]): Record<string, unknown> {
  let cur = obj as Record<string | number, unknown>;
  for (const k of path) {
    const next = cur[k];
    if (typeof next !== 'object' || next === null) throw new Error(`no object at ${path.join('.')} (stopped at ${String(k)})`);
    cur = next as Record<string | number, unknown>;
  }
  return cur as Record<string, unknown>;
}

/** A fresh fixture with `edit` applied; returns the messages of `inv`. */
export function broken(inv: Invariant, edit: (objs: Obj[], find: (kind: string, name: string) => Obj) => void): string[] {
  const objs = miniDeployment();
  edit(objs, (kind, name) => get(objs, kind, name));
  return inv(objs).map((v: Violation) => `${v.object}: ${v.message}`);
}

/** Messages of `inv` on the untouched fixture. */
export function clean(inv: Invariant): string[] {
  return inv(miniDeployment()).map((v) => `${v.object}: ${v.message}`);
}

/** Remove an object from the list. */
export function drop(objs: Obj[], kind: string, name: string): void {
  const i = objs.findIndex((o) => o.kind === kind && o.metadata.name === name);
  if (i < 0) throw new Error(`no ${kind} ${name} to drop`);
  objs.splice(i, 1);
}

/** The decode Deployment's vLLM container. */
export function decodeVllm(find: (kind: string, name: string) => Obj): Record<string, unknown> {
  return at(find('Deployment', 'kv-decode'), 'spec', 'template', 'spec', 'containers', 0);
}

/** Replace one arg (matched by prefix) of a container. */
export function setArg(container: Record<string, unknown>, prefix: string, replacement: string | undefined): void {
  const args = container.args as string[];
  const i = args.findIndex((a) => a.startsWith(prefix));
  if (i < 0) throw new Error(`no arg starting with ${prefix}`);
  if (replacement === undefined) args.splice(i, 1);
  else args[i] = replacement;
}
