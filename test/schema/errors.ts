/** One problem found while validating one Kubernetes object. */
export interface SchemaError {
  /** `Kind namespace/name` of the object (or `object #i` when it has no kind/name). */
  object: string;
  /** JSON pointer inside the object, `''` for the object itself (e.g. `/spec/template/spec/containers/0/name`). */
  path: string;
  /** What is wrong, and the offending value when there is one. */
  message: string;
  /** Which check found it: `kubernetes-models`, `crd-schema <file>`, `strict-fields`, `apiserver-rules`, `registry`. */
  source: string;
}

/** One line per error, readable in a jest failure. */
export function formatError(e: SchemaError): string {
  return `${e.object}: ${e.path || '(root)'}: ${e.message} [${e.source}]`;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `Kind namespace/name` for messages. */
export function describeObject(obj: unknown): string {
  if (!isRecord(obj)) return `non-object ${JSON.stringify(obj)}`;
  const kind = typeof obj.kind === 'string' ? obj.kind : '(no kind)';
  const md = isRecord(obj.metadata) ? obj.metadata : {};
  const name = typeof md.name === 'string' ? md.name : '(no name)';
  const ns = typeof md.namespace === 'string' ? `${md.namespace}/` : '';
  return `${kind} ${ns}${name}`;
}

/** JSON-pointer escape of one segment. */
export function ptr(parent: string, key: string | number): string {
  return `${parent}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

/** Short JSON rendering of a value for messages. */
export function show(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
