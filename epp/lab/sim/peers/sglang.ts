/**
 * SGLang router's `cache_aware` policy (sgl-router → sgl-model-gateway → smg), re-implemented for
 * the simulator from its specification (our own code; none of SGLang's is copied). Sources read:
 * sgl-project/sglang sgl-router/src/policies/cache_aware.rs @026f853b and the
 * sgl-model-gateway version @b93974f1 (miss → least load); lightseekorg/smg @73da68ca (ties).
 *
 * Per request, with L(w) the router's own in-flight count of worker w (up at dispatch, down at
 * completion; `FleetView.pods[w].inFlight`):
 * - imbalanced when max L − min L > balance_abs (64) AND max L > balance_rel (1.5) × min L: the
 *   least-loaded worker wins (ties → fewer requests routed so far → lower index);
 * - otherwise the prompt text is matched against one shared radix tree of every worker's routed
 *   prompts; if matched chars ÷ prompt chars > cache_threshold (0.3) the tenant of the deepest
 *   matched node wins (its last tenant if still attached, else any of its tenants), else the
 *   least-loaded worker;
 * - either way the prompt is inserted into the tree for the chosen worker.
 * Every eviction_interval (60 s of simulated time) each tenant's least-recently used leaves are
 * removed until the tenant holds ≤ max_tree_size (2^26) characters.
 *
 * Text: the simulator has token ids, not text. The prompt's text is derived deterministically
 * as 4 characters per token id (a fixed-width rendering of the id), so the tree is kept over
 * token ids with each token weighing 4 characters. The only difference from a true character
 * tree is that a match ends at a token boundary, where real text could match a few more
 * characters of the first differing token.
 */
import type { FleetView, PolicyContext, RoutingPolicy } from '../policy.js';
import { promptTokens, type SimRequest } from '../request.js';

export const SGLANG_DEFAULTS = Object.freeze({
  cacheThreshold: 0.3,
  balanceAbsThreshold: 64,
  balanceRelThreshold: 1.5,
  evictionIntervalMs: 60_000,
  maxTreeChars: 2 ** 26,
  charsPerToken: 4,
});

export interface SglangOptions {
  /** @default 0.3 */
  readonly cacheThreshold?: number;
  /** @default 64 */
  readonly balanceAbsThreshold?: number;
  /** @default 1.5 */
  readonly balanceRelThreshold?: number;
  /** @default 60000 (60 s) */
  readonly evictionIntervalMs?: number;
  /** Characters per tenant. @default 2^26 */
  readonly maxTreeChars?: number;
}

interface Node {
  /** Edge label from the parent (token ids). */
  label: Int32Array;
  parent: Node | undefined;
  readonly children: Map<number, Node>;
  /** tenant → last access (simulated ms). */
  readonly tenants: Map<number, number>;
  lastTenant: number;
}

const newNode = (label: Int32Array, parent: Node | undefined): Node => ({ label, parent, children: new Map(), tenants: new Map(), lastTenant: -1 });

/** One shared multi-tenant radix tree over token ids (each token = `charsPerToken` characters). */
export class MultiTenantTree {
  readonly root: Node = newNode(new Int32Array(0), undefined);
  /** Tokens held per tenant (a node's label counts once for each tenant on it). */
  readonly tokensOf = new Map<number, number>();

  /** Longest match of `text`: matched tokens and the chosen tenant (−1 when nothing matched). */
  prefixMatch(text: ArrayLike<number>): { matched: number; tenant: number } {
    let node = this.root;
    let i = 0;
    let deepest: Node | undefined;
    while (i < text.length) {
      const child = node.children.get(text[i] as number);
      if (!child) break;
      const lab = child.label;
      let j = 0;
      while (j < lab.length && i + j < text.length && lab[j] === text[i + j]) j++;
      i += j;
      deepest = child;
      if (j < lab.length) break;
      node = child;
    }
    if (!deepest || i === 0) return { matched: 0, tenant: -1 };
    let tenant = deepest.tenants.has(deepest.lastTenant) ? deepest.lastTenant : -1;
    if (tenant < 0) for (const t of deepest.tenants.keys()) if (tenant < 0) tenant = t;
    return { matched: i, tenant };
  }

  /** Inserts `text` for `tenant` at time `now`. */
  insert(text: ArrayLike<number>, tenant: number, now: number): void {
    let node = this.root;
    let i = 0;
    while (i < text.length) {
      const first = text[i] as number;
      const child = node.children.get(first);
      if (!child) {
        const leaf = newNode(Int32Array.from(Array.prototype.slice.call(text, i) as number[]), node);
        node.children.set(first, leaf);
        this.touch(leaf, tenant, now);
        return;
      }
      const lab = child.label;
      let j = 0;
      while (j < lab.length && i + j < text.length && lab[j] === text[i + j]) j++;
      if (j < lab.length) {
        // split the edge at j: child keeps the tail, a new middle node takes the head
        const mid = newNode(lab.slice(0, j), node);
        for (const [t, at] of child.tenants) mid.tenants.set(t, at);
        mid.lastTenant = child.lastTenant;
        child.label = lab.slice(j);
        child.parent = mid;
        mid.children.set(child.label[0] as number, child);
        node.children.set(first, mid);
        this.touch(mid, tenant, now);
        node = mid;
        i += j;
        continue;
      }
      this.touch(child, tenant, now);
      node = child;
      i += j;
    }
  }

  private touch(n: Node, tenant: number, now: number): void {
    if (!n.tenants.has(tenant)) this.tokensOf.set(tenant, (this.tokensOf.get(tenant) ?? 0) + n.label.length);
    n.tenants.set(tenant, now);
    n.lastTenant = tenant;
  }

  /** Removes each tenant's least recently used leaves until it holds ≤ `maxTokens`. */
  evict(maxTokens: number): void {
    for (const [tenant, held] of this.tokensOf) {
      if (held <= maxTokens) continue;
      // leaves of this tenant: nodes where the tenant has no child carrying it
      const leaves: Node[] = [];
      const walk = (n: Node): void => {
        let carried = false;
        for (const c of n.children.values()) {
          if (c.tenants.has(tenant)) {
            carried = true;
            walk(c);
          }
        }
        if (!carried && n !== this.root && n.tenants.has(tenant)) leaves.push(n);
      };
      walk(this.root);
      // min-heap by last access would be faster; a sorted list re-checked as parents become leaves is enough here
      let remaining = held;
      const queue = leaves.sort((a, b) => (a.tenants.get(tenant) as number) - (b.tenants.get(tenant) as number));
      while (remaining > maxTokens && queue.length > 0) {
        const n = queue.shift() as Node;
        n.tenants.delete(tenant);
        remaining -= n.label.length;
        const p = n.parent;
        if (n.tenants.size === 0 && p) {
          p.children.delete(n.label[0] as number);
        }
        if (p && p !== this.root && p.tenants.has(tenant) && ![...p.children.values()].some((c) => c.tenants.has(tenant))) {
          const at = p.tenants.get(tenant) as number;
          let k = 0;
          while (k < queue.length && (queue[k]?.tenants.get(tenant) as number) <= at) k++;
          queue.splice(k, 0, p);
        }
      }
      this.tokensOf.set(tenant, remaining);
    }
  }
}

export class SglangPolicy implements RoutingPolicy {
  readonly name = 'sglang';
  readonly o: Required<SglangOptions>;
  readonly tree = new MultiTenantTree();
  /** Requests routed to each worker so far (smg's second tie-break). */
  readonly processed: number[];
  private nextEvictionMs: number;

  constructor(ctx: PolicyContext, opts: SglangOptions = {}) {
    const d = SGLANG_DEFAULTS;
    this.o = {
      cacheThreshold: opts.cacheThreshold ?? d.cacheThreshold,
      balanceAbsThreshold: opts.balanceAbsThreshold ?? d.balanceAbsThreshold,
      balanceRelThreshold: opts.balanceRelThreshold ?? d.balanceRelThreshold,
      evictionIntervalMs: opts.evictionIntervalMs ?? d.evictionIntervalMs,
      maxTreeChars: opts.maxTreeChars ?? d.maxTreeChars,
    };
    this.processed = new Array<number>(ctx.podIds.length).fill(0);
    this.nextEvictionMs = this.o.evictionIntervalMs;
  }

  /** True when the router-local loads count as imbalanced. */
  imbalanced(loads: readonly number[]): boolean {
    const max = Math.max(...loads);
    const min = Math.min(...loads);
    return max - min > this.o.balanceAbsThreshold && max > this.o.balanceRelThreshold * min;
  }

  /** Least-loaded worker; ties → fewer processed → lower index. */
  leastLoaded(loads: readonly number[]): number {
    let best = 0;
    for (let i = 1; i < loads.length; i++) {
      const a = loads[i] as number;
      const b = loads[best] as number;
      if (a < b || (a === b && (this.processed[i] as number) < (this.processed[best] as number))) best = i;
    }
    return best;
  }

  /** The decision for a prompt given loads (exported for tests; does not insert). */
  decide(text: ArrayLike<number>, loads: readonly number[]): { pod: number; reason: 'imbalanced' | 'cache-hit' | 'cache-miss' } {
    if (this.imbalanced(loads)) return { pod: this.leastLoaded(loads), reason: 'imbalanced' };
    const m = this.tree.prefixMatch(text);
    const rate = text.length === 0 ? 0 : m.matched / text.length; // chars ÷ chars: 4 per token on both sides
    if (rate > this.o.cacheThreshold && m.tenant >= 0) return { pod: m.tenant, reason: 'cache-hit' };
    return { pod: this.leastLoaded(loads), reason: 'cache-miss' };
  }

  pick(req: SimRequest, fleet: FleetView): number {
    const now = fleet.nowMs;
    if (now >= this.nextEvictionMs) {
      this.tree.evict(Math.floor(this.o.maxTreeChars / SGLANG_DEFAULTS.charsPerToken));
      while (this.nextEvictionMs <= now) this.nextEvictionMs += this.o.evictionIntervalMs;
    }
    const text = promptTokens(req);
    const loads = fleet.pods.map((p) => p.inFlight);
    const { pod } = this.decide(text, loads);
    this.tree.insert(text, pod, now);
    this.processed[pod] = (this.processed[pod] as number) + 1;
    return pod;
  }
}
