/**
 * Validation against CRD OpenAPI v3 schemas (generated into imports/schemas by scripts/crd-schemas.ts),
 * with the API server's structural-schema semantics made strict:
 * - an object node that lists `properties` rejects any other field (the API server would prune it
 *   silently, or reject it with `kubectl apply --validate=strict`) unless it carries
 *   `x-kubernetes-preserve-unknown-fields: true` or its own `additionalProperties`;
 * - `x-kubernetes-int-or-string` accepts only integers and strings;
 * - `x-kubernetes-list-type: set|map` rejects duplicate items / duplicate map keys;
 * - formats int32/int64/double/date-time are checked (ajv-formats).
 * Not checked: `x-kubernetes-validations` (CEL rules).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { isRecord, type SchemaError } from './errors.js';

// ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the module object.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

/** Repository's generated schema directory. */
export const SCHEMA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'imports', 'schemas');

type Json = Record<string, unknown>;

/** Deep copy of a schema with structural strictness added (see the module comment). */
export function strictify(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strictify);
  if (!isRecord(schema)) return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'properties' && isRecord(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([p, s]) => [p, strictify(s)]));
    } else if (k === 'items' || k === 'additionalProperties') {
      out[k] = strictify(v);
    } else {
      // allOf/anyOf/oneOf/not branches and everything else stay as written: structural schemas
      // may not introduce fields there, so they get no additionalProperties of their own.
      out[k] = v;
    }
  }
  if (
    isRecord(out.properties) &&
    out.additionalProperties === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out.additionalProperties = false;
  }
  return out;
}

/**
 * The API server always accepts apiVersion, kind and metadata at the root, even when the CRD schema
 * omits them (the Istio CRDs list only spec and status).
 */
export function withObjectHeader(root: Json): Json {
  const props = isRecord(root.properties) ? root.properties : {};
  return {
    ...root,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      ...props,
      // status is written by controllers, never by us; its (large) schema is not compiled
      // (the Argo CD Application status alone takes ~7 s to compile).
      ...(props.status !== undefined ? { status: { type: 'object' } } : {}),
    },
  };
}

function itemKey(item: unknown, keys: readonly string[]): string {
  if (!isRecord(item)) return JSON.stringify(item);
  return JSON.stringify(keys.map((k) => item[k] ?? null));
}

function newAjv(): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, validateFormats: true, code: { optimize: false } });
  addFormats(ajv);
  ajv.addKeyword({
    keyword: 'x-kubernetes-int-or-string',
    schemaType: 'boolean',
    errors: true,
    validate: function intOrString(this: unknown, on: boolean, data: unknown): boolean {
      if (!on) return true;
      const ok = typeof data === 'string' || (typeof data === 'number' && Number.isInteger(data));
      if (!ok) {
        (intOrString as unknown as { errors: Partial<ErrorObject>[] }).errors = [
          { keyword: 'x-kubernetes-int-or-string', message: `must be an integer or a string (got ${JSON.stringify(data)})`, params: {} },
        ];
      }
      return ok;
    },
  });
  ajv.addKeyword({
    keyword: 'x-kubernetes-list-type',
    schemaType: 'string',
    errors: true,
    validate: function listType(this: unknown, type: string, data: unknown, parentSchema?: unknown): boolean {
      if (!Array.isArray(data) || (type !== 'set' && type !== 'map')) return true;
      const keys =
        type === 'map' && isRecord(parentSchema) && Array.isArray(parentSchema['x-kubernetes-list-map-keys'])
          ? (parentSchema['x-kubernetes-list-map-keys'] as string[])
          : [];
      const seen = new Set<string>();
      for (const item of data) {
        const key = type === 'set' ? JSON.stringify(item) : itemKey(item, keys);
        if (seen.has(key)) {
          (listType as unknown as { errors: Partial<ErrorObject>[] }).errors = [
            {
              keyword: 'x-kubernetes-list-type',
              message: `list-type ${type} has a duplicate ${type === 'map' ? `key (${keys.join(',')})=${key}` : `item ${key}`}`,
              params: {},
            },
          ];
          return false;
        }
        seen.add(key);
      }
      return true;
    },
  });
  for (const keyword of [
    'x-kubernetes-validations',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-map-type',
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-embedded-resource',
  ]) {
    ajv.addKeyword({ keyword });
  }
  return ajv;
}

/** Turn ajv errors into SchemaErrors with messages that name the field and the value. */
export function ajvErrors(errors: readonly ErrorObject[] | null | undefined, root: unknown, object: string, source: string): SchemaError[] {
  const out: SchemaError[] = [];
  for (const e of errors ?? []) {
    // `anyOf`/`oneOf` summary errors repeat what their branches said.
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'if') continue;
    const value = valueAt(root, e.instancePath);
    let path = e.instancePath;
    let message = e.message ?? e.keyword;
    if (e.keyword === 'additionalProperties') {
      const extra = String((e.params as { additionalProperty?: unknown }).additionalProperty);
      path = `${e.instancePath}/${extra}`;
      message = `unknown field "${extra}" (not in the schema; check its spelling and nesting)`;
    } else if (e.keyword === 'required') {
      const missing = String((e.params as { missingProperty?: unknown }).missingProperty);
      path = `${e.instancePath}/${missing}`;
      message = `missing required field "${missing}"`;
    } else if (e.keyword === 'enum') {
      message = `${message}: ${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)} (got ${JSON.stringify(value)})`;
    } else if (e.keyword !== 'x-kubernetes-int-or-string') {
      const shown = JSON.stringify(value);
      message = `${message} (got ${shown !== undefined && shown.length > 80 ? `${shown.slice(0, 77)}...` : shown})`;
    }
    out.push({ object, path, message, source });
  }
  return out;
}

/** Value at a JSON pointer. */
export function valueAt(root: unknown, pointer: string): unknown {
  if (pointer === '') return root;
  let cur: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) cur = cur[Number(key)];
    else if (isRecord(cur)) cur = cur[key];
    else return undefined;
  }
  return cur;
}

/** Validators for the CRD kinds whose schemas are in a directory (default: imports/schemas). */
export class CrdSchemaSet {
  private readonly ajv = newAjv();
  private readonly files = new Map<string, string>();
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(readonly dir: string = SCHEMA_DIR) {
    if (!existsSync(dir)) throw new Error(`schema directory ${dir} does not exist; run \`npx tsx scripts/crd-schemas.ts\``);
    for (const f of readdirSync(dir)) {
      const m = /^(.+)_([^_]+)_([^_]+)\.json$/.exec(f);
      if (m) this.files.set(`${m[1]}/${m[2]}/${m[3]}`, f);
    }
  }

  /** `group/version/Kind` keys (for tests and messages). */
  keys(): string[] {
    return [...this.files.keys()].sort();
  }

  /** True when a schema exists for this apiVersion (`group/version`) and kind. */
  has(apiVersion: string, kind: string): boolean {
    return this.files.has(`${apiVersion}/${kind}`);
  }

  /** Validate one object; [] when valid. Throws if there is no schema for it (call has() first). */
  validate(obj: Json, apiVersion: string, kind: string, object: string): SchemaError[] {
    const key = `${apiVersion}/${kind}`;
    const file = this.files.get(key);
    if (file === undefined) throw new Error(`no CRD schema for ${key} in ${this.dir}`);
    let fn = this.compiled.get(key);
    if (fn === undefined) {
      const schema: unknown = JSON.parse(readFileSync(join(this.dir, file), 'utf8'));
      fn = this.ajv.compile(withObjectHeader(strictify(schema) as Json));
      this.compiled.set(key, fn);
    }
    if (fn(obj)) return [];
    return ajvErrors(fn.errors, obj, object, `crd-schema ${file}`);
  }
}
