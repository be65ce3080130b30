/**
 * Turns schema-validation issues into lines that name the field, say what is wrong and how to
 * fix it, and show the value that was given. Shared by the EPP config and the deployment config.
 */

/** The part of a zod issue the formatter reads (kept structural: no zod import needed). */
export interface SchemaIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
  readonly code?: string;
  readonly keys?: readonly string[];
}

/** The value at `path` inside `input`, or undefined. */
export function valueAt(input: unknown, path: readonly (string | number)[]): unknown {
  let cur: unknown = input;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

/** `JSON.stringify` of a given value, or "nothing" when it is absent. */
export function showValue(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

/** One line per issue: `path: message[; fix] (got value)`. */
export function describeIssues(issues: readonly SchemaIssue[], input: unknown): string[] {
  return issues.map((i) => {
    const path = i.path.join('.') || '(root)';
    const extra = i.code === 'unrecognized_keys' && i.keys ? `; remove ${i.keys.map((k) => JSON.stringify(k)).join(', ')} or fix the spelling` : '';
    return `${path}: ${i.message}${extra} (got ${showValue(valueAt(input, i.path))})`;
  });
}
