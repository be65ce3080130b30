/** The committed dist/*.yaml manifests, parsed (multi-document YAML). */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { Manifest } from '../invariants/model.js';

/** Absolute path of the repository's dist/ folder. */
export const distDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist');

/** Every *.yaml / *.yml file in dist/ (sorted), with its objects; throws on YAML errors or non-objects. */
export function distFiles(dir: string = distDir): { file: string; objects: Manifest[] }[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((file) => {
      const objects: Manifest[] = [];
      parseAllDocuments(readFileSync(join(dir, file), 'utf8')).forEach((doc, i) => {
        if (doc.errors.length > 0) throw new Error(`${file} document ${i}: ${doc.errors[0].message}`);
        const o: unknown = doc.toJS();
        if (o === null || o === undefined) return; // empty document (e.g. trailing ---)
        if (typeof o !== 'object' || Array.isArray(o)) throw new Error(`${file} document ${i} is not a Kubernetes object: ${JSON.stringify(o)}`);
        objects.push(o as Manifest);
      });
      return { file, objects };
    });
}
