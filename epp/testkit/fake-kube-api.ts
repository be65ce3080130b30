/**
 * A local HTTP server that speaks enough of the Kubernetes list/watch API for informers:
 * `GET <collection>` lists (with labelSelector equality filtering), `GET <collection>?watch=true`
 * streams newline-delimited watch events. Tests change objects and the watches see the events;
 * they can also end every open watch or answer the next watch with 410 Gone.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string; deletionTimestamp?: string };
  [k: string]: unknown;
}

interface Watcher {
  collection: string;
  selector: Record<string, string>;
  res: ServerResponse;
}

function matches(labels: Record<string, string> | undefined, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function parseSelector(s: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (s ?? '').split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    out[k] = v ?? '';
  }
  return out;
}

export class FakeKubeApi {
  private readonly server: Server;
  private readonly collections = new Map<string, Map<string, KubeObject>>();
  private readonly watchers = new Set<Watcher>();
  /** Every change, so a watch from resourceVersion N first receives the changes after N. */
  private readonly history: { collection: string; rv: number; type: string; obj: KubeObject }[] = [];
  private rv = 1;
  private goneNext = 0;
  /** Requests seen, as `METHOD path?query` (for assertions on list/watch restarts). */
  readonly requests: string[] = [];
  port = 0;

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Creates or replaces an object in a collection path (e.g. `/api/v1/namespaces/ns/pods`). */
  put(collection: string, obj: KubeObject): void {
    const col = this.col(collection);
    const type = col.has(obj.metadata.name) ? 'MODIFIED' : 'ADDED';
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    col.set(obj.metadata.name, stored);
    this.emit(collection, type, stored);
  }

  delete(collection: string, name: string): void {
    const col = this.col(collection);
    const obj = col.get(name);
    if (!obj) return;
    col.delete(name);
    this.emit(collection, 'DELETED', { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } });
  }

  /** Ends every open watch (as an API server does on timeout). */
  endWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Sends an in-stream 410 Gone ERROR event to every open watch and ends it. */
  expireWatches(): void {
    for (const w of this.watchers) {
      w.res.write(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version' } })}\n`);
      w.res.end();
    }
    this.watchers.clear();
  }

  /** Collections answered with an error status (404: a CRD that is not installed), lists and watches. */
  private readonly failing = new Map<string, number>();
  /** Lists are answered this many ms late (a slow API server). */
  listDelayMs = 0;

  /** Answers 404 for `path` from now on (as an API server without that CRD). */
  markMissing(path: string): void {
    this.failWith(path, 404);
  }

  /** Answers `status` for every request on `path` from now on; 0 heals it. */
  failWith(path: string, status: number): void {
    if (status === 0) this.failing.delete(path);
    else this.failing.set(path, status);
  }

  /** The next `n` watch requests are answered with HTTP 410 Gone. */
  failNextWatches(n: number): void {
    this.goneNext = n;
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  private col(path: string): Map<string, KubeObject> {
    let c = this.collections.get(path);
    if (!c) {
      c = new Map();
      this.collections.set(path, c);
    }
    return c;
  }

  private emit(collection: string, type: string, obj: KubeObject): void {
    this.history.push({ collection, rv: Number(obj.metadata.resourceVersion), type, obj });
    for (const w of this.watchers) {
      if (w.collection === collection && matches(obj.metadata.labels, w.selector)) w.res.write(`${JSON.stringify({ type, object: obj })}\n`);
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const selector = parseSelector(url.searchParams.get('labelSelector'));
    const collection = url.pathname;
    const failing = this.failing.get(collection);
    if (failing !== undefined) {
      res.writeHead(failing, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: failing, message: `failing with ${failing} (test)` }));
      return;
    }
    if (url.searchParams.get('watch') === 'true') {
      if (this.goneNext > 0) {
        this.goneNext--;
        res.writeHead(410, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Gone', code: 410 }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      const w: Watcher = { collection, selector, res };
      const from = Number(url.searchParams.get('resourceVersion') ?? this.rv);
      for (const h of this.history) {
        if (h.collection === collection && h.rv > from && matches(h.obj.metadata.labels, selector)) res.write(`${JSON.stringify({ type: h.type, object: h.obj })}\n`);
      }
      this.watchers.add(w);
      req.on('close', () => this.watchers.delete(w));
      return;
    }
    const items = [...this.col(collection).values()].filter((o) => matches(o.metadata.labels, selector));
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(this.rv) }, items }));
    };
    if (this.listDelayMs > 0) setTimeout(answer, this.listDelayMs);
    else answer();
  }
}
