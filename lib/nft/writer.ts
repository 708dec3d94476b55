// NftSetWriter: ban/unban requests in, few nft transactions out.
//
// Requests share nft transactions, one at a time: while one runs, the next batch accumulates
// (only a full batch, in a flood, starts beside a running one: `maxConcurrent`). A transaction starts at most once per `batchMs`, counted
// from the start of the previous one (a throttle, not a delay): after a quiet period the first
// ban goes to libnftables inside the ban() call that asked for it — the worker thread starts on
// it while the caller logs the decision and reads the rest of its socket read — and what
// follows within the window shares the next transaction. Under a flood, the library's own run
// time is what paces batches, and they grow up to `maxBatch`. Under a steady stream of bans (the
// last transaction had `busyElements` or more) they start at most once per `busyBatchMs`: fewer,
// larger transactions, each one call into libnftables. A transaction is all-or-nothing,
// so when nft refuses one, the batch is
// bisected until the refused elements are isolated and reported one by one while the rest
// land. New elements are sent with `create` (cheap); elements that may already be in the
// kernel with add + delete + add (so the timeout is replaced on every kernel); if a
// presumed-new element turns out to exist, the batch is re-sent the expensive way, so the
// bookkeeping of what is present is an optimisation, never a source of wrong state. A prefix
// that nests with one in the kernel is widened (the narrower prefixes inside it are replaced in
// the same transaction) or reported as covered by the wider one already there — within the
// interval sets (the kernel refuses the overlap) and across the IPv6 interval set and the /64
// set (the kernel cannot tell: the writer's index of IPv6 prefixes says when to look).
// Whole-run failures (nft missing, no permission, transient errors after bounded
// retries) are reported to the observer and to every affected request, never swallowed.
import { cidrContainsCidr, type Cidr } from '../net/ip.js';
import { addElements, createElements, deleteElements, element, elements, listSet, prefix } from './builders.js';
import { formatBanComment, type BanComment } from './comment.js';
import { NftError } from './errors.js';
import { DEFAULT_RETRY_POLICY, executeNft, type ExecuteOptions, type NftExecution, type RetryPolicy } from './execute.js';
import { BAN_SET_ROLES, isPrefixRole, setRoleFor, type BanSetRole, type NftLayout } from './layout.js';
import type { NftRunner } from './libnftables.js';
import { Ipv6PrefixIndex } from './nesting.js';
import { LISTING_DEADLINE_MS, listKernelBans, parseListOutput, type KernelBan, type KernelBanList, type TableInspection } from './readback.js';
import type { NftCommand, NftElementExpression, NftElementKey } from './schema.js';
import { systemClock, systemScheduler, type CancelScheduled, type Clock, type Scheduler } from './scheduler.js';
import { ensureNftTable } from './setup.js';

/** What became of one ban or unban request. Promises of the writer never reject. */
export type ElementOutcome =
  /** The ban is in the kernel with the requested timeout and comment. */
  | { readonly status: 'written' }
  /** The unban deleted the element. */
  | { readonly status: 'removed' }
  /** The unban found nothing to delete. */
  | { readonly status: 'not-banned' }
  /** A later ban/unban of the same target in the same batch replaced this request. */
  | { readonly status: 'superseded' }
  /** nft refused this element on its own (isolated by bisection), or it was invalid. */
  | { readonly status: 'refused'; readonly message: string }
  /** A wider prefix already banned covers this target (its ban was left as it is). */
  | { readonly status: 'covered'; readonly by: string; readonly secondsLeft: number | null }
  /** The whole run failed: nft missing, no permission, or transient errors past the retries. */
  | { readonly status: 'failed'; readonly error: NftError };

export type NftWriteAction = 'ban' | 'unban';

/** One element of a committed transaction, as reported to the observer. */
export interface NftElementWrite {
  readonly target: Cidr;
  readonly action: NftWriteAction;
  /** Ban length in seconds (unbans: 0). */
  readonly seconds: number;
  /** The stored comment (unbans: empty). */
  readonly comment: string;
}

/** Outcomes for the daemon's metrics and logs. Every method is optional. */
export interface NftWriterObserver {
  /** One nft transaction committed with these elements (a batch, or a part of a split one). */
  batchWritten?(elements: readonly NftElementWrite[]): void;
  /** nft refused this element (message: nft's error line) or the request was invalid. */
  elementRefused?(target: Cidr, message: string): void;
  /** A whole nft run failed; `willRetry` false means the affected requests failed. */
  runFailed?(error: NftError, willRetry: boolean): void;
  /** Our table or a set was gone (e.g. `nft flush ruleset`) and was created again. */
  tableRecreated?(): void;
}

export interface NftSetWriterOptions {
  /** Transactions start at most once per this many ms (from the previous start). Default 5. */
  readonly batchMs?: number;
  /** A batch is sent at once when it reaches this many elements. Default 5000. */
  readonly maxBatch?: number;
  /** Transactions at once, a second (and more) only for full batches. Default 2. */
  readonly maxConcurrent?: number;
  /**
   * After a transaction of `busyElements` or more (default 32: a steady stream of bans, not a
   * lone attacker), the next starts at most `busyBatchMs` after it (default 50) instead of
   * `batchMs`: fewer, larger transactions while it lasts. A full batch still goes at once.
   */
  readonly busyElements?: number;
  readonly busyBatchMs?: number;
  /** Longer bans are shortened to this. Default 10 years. */
  readonly maxBanSeconds?: number;
  /** Retries of transient whole-run failures. Default 4 retries, 50 ms doubling to 2 s. */
  readonly retry?: RetryPolicy;
  /** Re-create the table and sets when they vanished, then retry the batch. Default true. */
  readonly recreateMissingTable?: boolean;
  readonly observer?: NftWriterObserver;
  readonly scheduler?: Scheduler;
  readonly clock?: Clock;
}

const TEN_YEARS_SECONDS = 10 * 365 * 24 * 3600;
/** An element we believe expired this recently may still be in the kernel (whole-second rounding). */
const EXPIRY_SLACK_MS = 5000;

/** `fast`: create presumed-new elements. `full`: add + delete + add every ban (always works). */
type WriteMode = 'fast' | 'full';

interface PendingRequest extends NftElementWrite {
  action: NftWriteAction;
  seconds: number;
  comment: string;
  readonly role: BanSetRole;
  promise: Promise<ElementOutcome>;
  resolve: (outcome: ElementOutcome) => void;
}

function settled(outcome: ElementOutcome): Promise<ElementOutcome> {
  return Promise.resolve(outcome);
}

function elementKey(target: Cidr, role: BanSetRole): NftElementKey {
  return isPrefixRole(role) ? prefix(target.network, target.prefixLength) : target.network;
}

export class NftSetWriter {
  private readonly batchMs: number;
  private readonly busyElements: number;
  private readonly busyBatchMs: number;
  /** Elements of the last transaction started (decides between batchMs and busyBatchMs). */
  private lastBatchSize = 0;
  /** Lowered when the kernel says a batch is too large for the netlink socket buffer. */
  private maxBatch: number;
  private readonly maxBanSeconds: number;
  private readonly recreateMissingTable: boolean;
  private readonly observer: NftWriterObserver;
  private readonly scheduler: Scheduler;
  private readonly clock: Clock;
  private readonly execute: ExecuteOptions;

  /** Requests not yet sent, by target text; insertion order is send order. */
  private readonly pending = new Map<string, PendingRequest>();
  /** Requests in running transactions, by target text. */
  private readonly inFlight = new Map<string, PendingRequest>();
  /** Transactions running now (at most maxConcurrent; more than one only for full batches). */
  private running = 0;
  private readonly maxConcurrent: number;
  /** The batch window has elapsed (or a flush asked): send without waiting. */
  private due = false;
  private cancelTimer: CancelScheduled | null = null;
  /** A full batch is waiting for the next turn of the event loop (not for the window). */
  private fullBatchQueued = false;
  /** When the last transaction started (clock ms): the throttle's reference. */
  private lastStartMs = Number.NEGATIVE_INFINITY;
  private closed = false;
  /**
   * Targets that may be in the kernel (written by us or read back), with when they expire
   * (Unix ms). Decides create vs add+delete+add; pruned of expired entries as it grows.
   */
  private readonly maybePresent = new Map<string, number>();
  private pruneAtSize = 10_000;
  /** The IPv6 prefixes of maybePresent, by length class: when a ban may nest across sets. */
  private readonly ipv6Prefixes = new Ipv6PrefixIndex();

  constructor(
    private readonly runner: NftRunner,
    private readonly layout: NftLayout,
    options: NftSetWriterOptions = {},
  ) {
    this.batchMs = Math.max(0, options.batchMs ?? 5);
    this.busyElements = Math.max(1, options.busyElements ?? 32);
    this.busyBatchMs = Math.max(this.batchMs, options.busyBatchMs ?? 50);
    this.maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 5000));
    this.maxConcurrent = Math.max(1, Math.floor(options.maxConcurrent ?? 2));
    this.maxBanSeconds = options.maxBanSeconds ?? TEN_YEARS_SECONDS;
    this.recreateMissingTable = options.recreateMissingTable ?? true;
    this.observer = options.observer ?? {};
    this.scheduler = options.scheduler ?? systemScheduler;
    this.clock = options.clock ?? systemClock;
    const observer = this.observer;
    this.execute = {
      retry: options.retry ?? DEFAULT_RETRY_POLICY,
      scheduler: this.scheduler,
      onRunFailed: (error, willRetry) => observer.runFailed?.(error, willRetry),
    };
  }

  /**
   * Creates or repairs the table, sets and chain; returns what the table held (its bans).
   * Throws NftError (see `.fatal`): also for a table of our name fsguard did not create.
   */
  async setup(): Promise<TableInspection> {
    const inspection = await ensureNftTable(this.runner, this.layout, this.execute, this.clock);
    this.noteListed(inspection.list.bans);
    return inspection;
  }

  /**
   * Records FreeSWITCH's own addresses in our table (the one place `fsguard ban` reads them
   * from); kept for `seconds`, written again when the daemon next learns them.
   */
  async recordSwitchAddresses(addresses: readonly Cidr[], seconds: number): Promise<NftExecution> {
    const { family, table } = this.layout;
    const commands: NftCommand[] = [];
    for (const [set, fam] of [[this.layout.switch4, 4], [this.layout.switch6, 6]] as const) {
      const elems = addresses.filter((a) => a.family === fam).map((a) => element(a.network, { timeout: Math.ceil(seconds) }));
      if (elems.length === 0) continue;
      // add + delete + add: the timeout is renewed whether or not it was there.
      const add = addElements(elements(family, table, set, elems));
      commands.push(add, deleteElements(elements(family, table, set, elems.map((e) => e.elem.val))), add);
    }
    if (commands.length === 0) return { ok: true, output: '' };
    return executeNft(this.runner, commands, this.execute);
  }

  /** Calls into libnftables that passed their deadline and have not returned. */
  get hungCalls(): number {
    return this.runner.hungCalls;
  }

  /** Every ban in the kernel, read back now. Throws NftError; a missing table is empty. */
  async list(): Promise<KernelBanList> {
    const list = await listKernelBans(this.runner, this.layout, this.clock, this.execute);
    this.noteListed(list.bans);
    return list;
  }

  private noteListed(bans: readonly KernelBan[]): void {
    for (const ban of bans) {
      this.maybePresent.set(ban.target.text, ban.expiresAtMs ?? Number.POSITIVE_INFINITY);
      this.ipv6Prefixes.add(ban.target);
    }
  }

  /**
   * Queues a ban. Resolves once it is in the kernel (or refused/failed); callers on the
   * hot path can ignore the promise and rely on the observer. A second ban of the same
   * target in the same batch is merged: the longer timeout (and its comment) wins.
   * Re-banning a target that is already in the kernel replaces its timeout and comment.
   */
  ban(target: Cidr, seconds: number, comment: BanComment): Promise<ElementOutcome> {
    const role = this.checkTarget(target);
    if (typeof role !== 'string') return role;
    if (!Number.isFinite(seconds) || seconds <= 0) return this.refuse(target, `ban length must be a positive number of seconds, got ${seconds}`);
    const timeout = Math.min(this.maxBanSeconds, Math.ceil(seconds));
    const text = formatBanComment(comment);
    const existing = this.pending.get(target.text);
    if (existing && existing.action === 'ban') {
      if (timeout >= existing.seconds) {
        existing.seconds = timeout;
        existing.comment = text;
      }
      return existing.promise;
    }
    return this.enqueue(target, role, 'ban', timeout, text, existing);
  }

  /** Queues deletion of a ban. Resolves `removed`, or `not-banned` when it was not in the set. */
  unban(target: Cidr): Promise<ElementOutcome> {
    const role = this.checkTarget(target);
    if (typeof role !== 'string') return role;
    const existing = this.pending.get(target.text);
    if (existing && existing.action === 'unban') return existing.promise;
    return this.enqueue(target, role, 'unban', 0, '', existing);
  }

  /** Resolves when everything queued so far has reached the kernel (or was reported failed). */
  async flush(): Promise<void> {
    const waits = [...this.inFlight.values(), ...this.pending.values()].map((r) => r.promise);
    if (this.pending.size > 0) {
      this.due = true;
      this.pump();
    }
    await Promise.all(waits);
  }

  /** Flushes, then refuses further requests. The sets are left as they are: bans outlive us. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    this.cancelTimer?.();
    this.cancelTimer = null;
    await this.runner.close?.();
  }

  /** Requests waiting to be sent or in the running transaction (for metrics/tests). */
  get queued(): number {
    return this.pending.size + this.inFlight.size;
  }

  // ---- internals ---------------------------------------------------------------------

  private checkTarget(target: Cidr): BanSetRole | Promise<ElementOutcome> {
    if (this.closed) return this.refuse(target, 'the nft writer is closed');
    return setRoleFor(target);
  }

  private refuse(target: Cidr, message: string): Promise<ElementOutcome> {
    this.observer.elementRefused?.(target, message);
    return settled({ status: 'refused', message });
  }

  private enqueue(
    target: Cidr,
    role: BanSetRole,
    action: NftWriteAction,
    seconds: number,
    comment: string,
    replacing: PendingRequest | undefined,
  ): Promise<ElementOutcome> {
    let resolve!: (outcome: ElementOutcome) => void;
    const promise = new Promise<ElementOutcome>((r) => { resolve = r; });
    if (replacing) {
      // ban then unban (or the reverse) in one batch: only the last request is sent.
      replacing.resolve({ status: 'superseded' });
      replacing.action = action;
      replacing.seconds = seconds;
      replacing.comment = comment;
      replacing.promise = promise;
      replacing.resolve = resolve;
      return promise;
    }
    this.pending.set(target.text, { target, role, action, seconds, comment, promise, resolve });
    if (this.pending.size >= this.maxBatch) {
      // Not pump() here: building and staging thousands of elements would happen inside the
      // ban() call (the policy's event handler) that happened to fill the batch.
      if (!this.fullBatchQueued) {
        this.fullBatchQueued = true;
        this.scheduler.schedule(() => {
          this.fullBatchQueued = false;
          this.pump();
        }, 0);
      }
    } else if (this.cancelTimer === null && !this.due) {
      const interval = this.lastBatchSize >= this.busyElements ? this.busyBatchMs : this.batchMs;
      const wait = Math.max(0, this.lastStartMs + interval - this.clock.nowMs());
      if (wait === 0 && this.running === 0) {
        // A lone request after a quiet period: one element to build, so no reason to make the
        // kernel wait for the rest of this turn (the ban latency figure, bench/RESULTS.md).
        this.due = true;
        this.pump();
        return promise;
      }
      this.cancelTimer = this.scheduler.schedule(() => {
        this.cancelTimer = null;
        this.due = true;
        this.pump();
      }, wait);
    }
    return promise;
  }

  /**
   * Starts the next transaction if a batch is ready: when none is running, or (up to
   * `maxConcurrent`) beside running ones when a full batch is waiting — a flood. nft parses a
   * batch for longer than the kernel takes to commit it, so two processes write ~1.7× as fast.
   * A target whose earlier request is still being written waits for it (its requests reach
   * the kernel in order).
   */
  private pump(): void {
    while (this.running < this.maxConcurrent && this.pending.size > 0) {
      const full = this.pending.size >= this.maxBatch;
      if (!full && (this.running > 0 || !this.due)) return;
      const batch: PendingRequest[] = [];
      for (const request of this.pending.values()) {
        if (this.inFlight.has(request.target.text)) continue;
        batch.push(request);
        if (batch.length >= this.maxBatch) break;
      }
      if (batch.length === 0 || (this.running > 0 && batch.length < this.maxBatch)) return;
      for (const request of batch) {
        this.pending.delete(request.target.text);
        this.inFlight.set(request.target.text, request);
      }
      if (this.pending.size === 0) {
        this.due = false;
        this.cancelTimer?.();
        this.cancelTimer = null;
      }
      this.running++;
      this.lastStartMs = this.clock.nowMs();
      this.lastBatchSize = batch.length;
      void this.writeRequests(batch).finally(() => {
        this.running--;
        for (const request of batch) if (this.inFlight.get(request.target.text) === request) this.inFlight.delete(request.target.text);
        this.pump();
      });
    }
  }

  /**
   * The transaction for a batch, per set: `create` of bans believed new; add + delete + add
   * of bans that may exist (before kernel 6.12 `add` of an existing element keeps its old
   * timeout, and the comment is never updated; adding first means the delete cannot fail,
   * and the second add makes the element exactly what we asked for, atomically); delete of
   * the unbans.
   */
  private commandsFor(batch: readonly PendingRequest[], mode: WriteMode): NftCommand[] {
    const { family, table } = this.layout;
    const nowMs = this.clock.nowMs();
    const commands: NftCommand[] = [];
    for (const role of BAN_SET_ROLES) {
      const created: NftElementExpression[] = [];
      const replaced: NftElementExpression[] = [];
      const replacedKeys: NftElementKey[] = [];
      const deletedKeys: NftElementKey[] = [];
      for (const request of batch) {
        if (request.role !== role) continue;
        const key = elementKey(request.target, role);
        if (request.action === 'unban') {
          deletedKeys.push(key);
        } else if (mode === 'fast' && !this.mayBePresent(request.target.text, nowMs)) {
          created.push(element(key, { timeout: request.seconds, comment: request.comment }));
        } else {
          replacedKeys.push(key);
          replaced.push(element(key, { timeout: request.seconds, comment: request.comment }));
        }
      }
      const set = this.layout[role];
      if (created.length > 0) commands.push(createElements(elements(family, table, set, created)));
      if (replaced.length > 0) {
        const add = addElements(elements(family, table, set, replaced));
        commands.push(add, deleteElements(elements(family, table, set, replacedKeys)), add);
      }
      if (deletedKeys.length > 0) commands.push(deleteElements(elements(family, table, set, deletedKeys)));
    }
    return commands;
  }

  private mayBePresent(key: string, nowMs: number): boolean {
    const expiresAtMs = this.maybePresent.get(key);
    return expiresAtMs !== undefined && expiresAtMs + EXPIRY_SLACK_MS > nowMs;
  }

  /** Records what a committed transaction did, so the next ban of a target picks the right commands. */
  private remember(batch: readonly PendingRequest[]): void {
    const nowMs = this.clock.nowMs();
    for (const request of batch) {
      if (request.action === 'ban') {
        this.maybePresent.set(request.target.text, nowMs + request.seconds * 1000);
        this.ipv6Prefixes.add(request.target);
      } else {
        this.forget(request.target.text);
      }
    }
    if (this.maybePresent.size >= this.pruneAtSize) {
      for (const [key, expiresAtMs] of this.maybePresent) {
        if (expiresAtMs + EXPIRY_SLACK_MS <= nowMs) this.forget(key);
      }
      this.pruneAtSize = Math.max(10_000, this.maybePresent.size * 2);
    }
  }

  /** A target the bookkeeping no longer takes to be in the kernel. */
  private forget(text: string): void {
    this.maybePresent.delete(text);
    this.ipv6Prefixes.delete(text);
  }

  /**
   * A batch as pump() took it: the IPv6 prefix bans that may nest with a ban in the other
   * prefix set are settled one by one against the kernel's listing (resolveNesting); the rest
   * is one transaction.
   */
  private async writeRequests(batch: readonly PendingRequest[]): Promise<void> {
    const nowMs = this.clock.nowMs();
    const nesting = batch.filter((r) => r.action === 'ban' && this.ipv6Prefixes.acrossSets(r.target).some((c) => this.mayBePresent(c.text, nowMs)));
    const rest = nesting.length === 0 ? batch : batch.filter((r) => !nesting.includes(r));
    if (rest.length > 0) await this.writeBatch(rest, false, 'fast');
    for (const request of nesting) await this.resolveNesting(request, false);
  }

  private async writeBatch(batch: readonly PendingRequest[], tableRecreated: boolean, mode: WriteMode): Promise<void> {
    const result = await executeNft(this.runner, this.commandsFor(batch, mode), this.execute);
    if (result.ok) {
      this.remember(batch);
      for (const request of batch) request.resolve({ status: request.action === 'ban' ? 'written' : 'removed' });
      this.observer.batchWritten?.(batch);
      return;
    }
    const error = result.error;
    if (error.kind === 'exists' && mode === 'fast') {
      // Something we took for new is there already (banned by another process, or we
      // forgot): the full form replaces it, whatever is present.
      return this.writeBatch(batch, tableRecreated, 'full');
    }
    if (error.retryable || error.fatal) {
      // executeNft already reported it (with willRetry false for this last attempt).
      for (const request of batch) request.resolve({ status: 'failed', error });
      return;
    }
    if (error.kind === 'missing-table') {
      // Not about any one element: our table or a set is gone (`nft flush ruleset` by a
      // firewall reload, an admin). Put it back once and retry; never bisect this.
      if (this.recreateMissingTable && !tableRecreated && batch.some((r) => r.action === 'ban')) {
        // Through ensureNftTable: a table of our name that someone else created since is refused, not written into.
        const repaired = await ensureNftTable(this.runner, this.layout, this.execute, this.clock).then(() => null, (e: unknown) => e);
        if (repaired === null) {
          this.observer.tableRecreated?.();
          return this.writeBatch(batch, true, mode);
        }
        const repairError = repaired instanceof NftError ? repaired : new NftError('rejected', String(repaired), String(repaired));
        if (repairError.retryable || repairError.fatal) {
          for (const request of batch) request.resolve({ status: 'failed', error: repairError });
          return;
        }
      }
      for (const request of batch) await this.settleAlone(request, error);
      return;
    }
    if (error.kind === 'too-large') this.maxBatch = Math.max(1, Math.min(this.maxBatch, Math.floor(batch.length / 2)));
    if (batch.length === 1) {
      await this.settleAlone(batch[0]!, error);
      return;
    }
    // One element spoils the transaction: halve until the refused ones stand alone.
    const middle = Math.ceil(batch.length / 2);
    await this.writeBatch(batch.slice(0, middle), tableRecreated, mode);
    await this.writeBatch(batch.slice(middle), tableRecreated, mode);
  }

  private async settleAlone(request: PendingRequest, error: NftError): Promise<void> {
    if (error.kind === 'overlap' && request.action === 'ban' && isPrefixRole(request.role)) {
      await this.resolveNesting(request, true);
      return;
    }
    if (request.action === 'unban' && (error.kind === 'missing-element' || error.kind === 'missing-table')) {
      this.maybePresent.delete(request.target.text);
      request.resolve({ status: 'not-banned' });
      return;
    }
    this.observer.elementRefused?.(request.target, error.detail);
    request.resolve({ status: 'refused', message: error.detail });
  }

  /**
   * A prefix ban that nests with bans in the kernel: refused by the interval set as overlapping
   * (`refusedAsOverlap`), or an IPv6 prefix the index says may nest with one in the other
   * prefix set. Prefixes nest or are disjoint, so the sets hold either a wider prefix covering
   * it (the request is covered: that ban stays) or narrower ones inside it (widening: they are
   * deleted and the wider one added, in one transaction).
   */
  private async resolveNesting(request: PendingRequest, refusedAsOverlap: boolean): Promise<void> {
    const { family, table } = this.layout;
    const roles: readonly BanSetRole[] = request.target.family === 6 ? ['set6net', 'set6p64'] : [request.role];
    const bans: KernelBan[] = [];
    // One set per call: libnftables 1.0.6 fails a JSON batch of two `list set` commands.
    for (const role of roles) {
      const listed = await executeNft(this.runner, [listSet(family, table, this.layout[role])], this.execute, { timeoutMs: LISTING_DEADLINE_MS });
      if (!listed.ok) {
        if (!refusedAsOverlap && listed.error.kind === 'missing-table') {
          // The table or a set is gone: the ordinary write recreates it (nothing can nest in it).
          await this.writeBatch([request], false, 'fast');
          return;
        }
        this.observer.elementRefused?.(request.target, listed.error.detail);
        request.resolve(listed.error.retryable || listed.error.fatal ? { status: 'failed', error: listed.error } : { status: 'refused', message: listed.error.detail });
        return;
      }
      bans.push(...parseListOutput(listed.output, this.layout, this.clock.nowMs()).bans.filter((b) => b.set === role));
    }
    const target = request.target;
    const wider = bans.find((b) => cidrContainsCidr(b.target, target) && b.target.text !== target.text);
    if (wider) {
      request.resolve({ status: 'covered', by: wider.target.text, secondsLeft: wider.expiresSeconds });
      return;
    }
    const inside = bans.filter((b) => cidrContainsCidr(target, b.target) && b.target.text !== target.text);
    if (inside.length === 0) {
      if (!refusedAsOverlap) {
        // The index's hint was stale (they expired, or were unbanned by someone else): forgotten,
        // and an ordinary write.
        const listedTexts = new Set(bans.map((b) => b.target.text));
        for (const c of this.ipv6Prefixes.acrossSets(target)) if (!listedTexts.has(c.text)) this.forget(c.text);
        await this.writeBatch([request], false, 'fast');
        return;
      }
      this.observer.elementRefused?.(request.target, 'interval overlaps, but no overlapping prefix was found');
      request.resolve({ status: 'refused', message: 'interval overlaps, but no overlapping prefix was found' });
      return;
    }
    // The target itself may be there already (written beside the /64s inside it): deleted
    // first, so the add sets its timeout and comment. (Not the add + delete + add form: in an
    // interval set, deleting an element added earlier in the same transaction fails.)
    const same = bans.find((b) => b.target.text === target.text);
    const deletes = BAN_SET_ROLES.flatMap((role) => {
      const keys = [...inside, ...(same ? [same] : [])].filter((b) => b.set === role).map((b) => elementKey(b.target, role));
      return keys.length > 0 ? [deleteElements(elements(family, table, this.layout[role], keys))] : [];
    });
    const key = elementKey(target, request.role);
    const add = addElements(elements(family, table, this.layout[request.role], [element(key, { timeout: request.seconds, comment: request.comment })]));
    const result = await executeNft(this.runner, [...deletes, add], this.execute);
    if (result.ok) {
      for (const b of inside) this.forget(b.target.text);
      this.remember([request]);
      request.resolve({ status: 'written' });
      this.observer.batchWritten?.([request]);
      return;
    }
    if (result.error.retryable || result.error.fatal) {
      request.resolve({ status: 'failed', error: result.error });
      return;
    }
    this.observer.elementRefused?.(request.target, result.error.detail);
    request.resolve({ status: 'refused', message: result.error.detail });
  }
}
