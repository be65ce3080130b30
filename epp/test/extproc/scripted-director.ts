/**
 * A deterministic RequestDirector for the ext_proc tests. It is not a scheduler: it round-robins
 * over a fixed endpoint list (restricted by the subset hint, as a scheduler must be), and lets a
 * test script the next outcomes (a given PickResult, an ApiError, a delay). It records every
 * request, response report and onDone so tests can assert on what the protocol layer passed in.
 */
import { ApiError } from '../../src/contract/errors.js';
import type { InferenceRequest, PickResult, RequestDirector, ResponseInfo } from '../../src/extproc/director.js';
import { subsetAllows } from '../../src/extproc/endpoints.js';

export type ScriptStep = { readonly result: PickResult; readonly delayMs?: number } | { readonly error: Error; readonly delayMs?: number } | { readonly delayMs: number };

export class ScriptedDirector implements RequestDirector {
  /** What each pick() saw (copies: the payload of the live request is released after the decision). */
  readonly picks: InferenceRequest[] = [];
  /** The request objects pick() was given, as they are now (the protocol layer updates them). */
  readonly live: InferenceRequest[] = [];
  readonly responses: { req: InferenceRequest; info: ResponseInfo }[] = [];
  readonly done: InferenceRequest[] = [];
  private readonly script: ScriptStep[] = [];
  private rr = 0;
  private doneWaiters: (() => void)[] = [];

  constructor(private readonly endpoints: readonly string[]) {}

  /** Scripts the outcome of the next pick (steps are used in order, then round-robin resumes). */
  then(step: ScriptStep): this {
    this.script.push(step);
    return this;
  }

  /** Requests whose pick resolved and that have not been released yet. */
  get inFlight(): number {
    return this.resolvedPicks - this.done.length;
  }

  private resolvedPicks = 0;

  async pick(req: InferenceRequest): Promise<PickResult> {
    // A copy: the protocol layer releases the request's payload once the decision is sent.
    this.picks.push({ ...req });
    this.live.push(req);
    const step = this.script.shift();
    if (step?.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
    if (step && 'error' in step) throw step.error;
    let result: PickResult;
    if (step && 'result' in step) {
      result = step.result;
    } else {
      const allowed = this.endpoints.filter((e) => subsetAllows(req.subsetCandidates, e));
      if (allowed.length === 0) throw new ApiError('no_endpoint', 'scripted director: no endpoint in the subset');
      result = { endpoints: [allowed[this.rr++ % allowed.length]!] };
    }
    this.resolvedPicks++;
    return result;
  }

  onResponse(req: InferenceRequest, info: ResponseInfo): void {
    this.responses.push({ req, info });
  }

  onDone(req: InferenceRequest): void {
    this.done.push(req);
    for (const w of this.doneWaiters.splice(0)) w();
  }

  /** Resolves once `n` onDone calls have happened. */
  async waitDone(n: number, timeoutMs = 5000): Promise<void> {
    const start = Date.now();
    while (this.done.length < n) {
      if (Date.now() - start > timeoutMs) throw new Error(`only ${this.done.length} of ${n} onDone calls within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.doneWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}
