/**
 * Leases on the cluster's bucket: at most one replica holds a name at a time (one transfer per digest,
 * one coordinator per link). A lease is one small JSON object, `leases/<name>`:
 *
 *   take     PutObject If-None-Match: *          (no object yet)
 *            PutObject If-Match: <etag>          (released, or seen expired)
 *   renew    PutObject If-Match: <etag>          every ttl/3, with jitter
 *   release  PutObject If-Match: <etag>, body state "released" (RGW has no conditional delete)
 *
 * Every write carries a fresh nonce, so every write changes the etag.
 *
 * Clocks: no wall-clock time is compared between replicas. A holder counts its lease valid until
 * ttl - margin after it *sent* its last successful write, by its own monotonic clock; an observer
 * counts a lease expired once it has seen the *same etag* for ttl by its own monotonic clock. The
 * write was sent before the observer first saw its etag, so the holder stops (ttl - margin after
 * sending) before any observer may steal (ttl after seeing), whatever the clocks' offsets; only
 * their rates must agree within margin/ttl (default 20%, far beyond any real drift). A holder
 * paused longer than that (SIGSTOP, a swapped-out process) comes back to a lost lease: its next
 * renew fails the If-Match and its signal aborts; writes it had in flight are fenced by the
 * conditional writes of whatever it protects (progress.ts).
 *
 * A renewal merely late (a store slow to answer under load, an event loop stalled) is not a
 * death: past its deadline the holder is no longer `valid` (it writes nothing: untilValid() waits)
 * but it keeps the lease until the renewal in flight has its verdict. Landed, the If-Match proves
 * nobody took the lease meanwhile, and the holder goes on (valid again from when that renewal was
 * sent); 412, it was taken (stolen); failed, or no verdict within another ttl, it expired. So a
 * holder gives up only a lease it cannot keep, never one nobody else took.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterObjects } from './objects.ts';

export type LeaseLossReason = 'stolen' | 'expired' | 'released';

/** The holder must stop writing: its lease is gone. */
export class LeaseLostError extends Error {
  constructor(readonly lease: string, readonly reason: LeaseLossReason) {
    super(`lease ${lease} ${reason === 'released' ? 'was released' : reason === 'stolen' ? 'was taken by another replica' : 'expired before it could be renewed'}`);
    this.name = 'LeaseLostError';
  }
}

export interface LeaseTiming {
  /** How long a lease lives without a renew (default 5000 ms). */
  ttlMs?: number;
  /** Time between renews (default ttl/3), each varied by ±jitter so replicas do not beat together. */
  renewEveryMs?: number;
  /** Fraction (default 0.2). */
  jitter?: number;
  /** The holder stops this long before its ttl runs out (default ttl/5): request time, clock rates. */
  marginMs?: number;
}

interface LeaseBody {
  v: 1;
  holder: string;
  state: 'held' | 'released';
  ttlMs: number;
  seq: number;
  nonce: string;
  /** For people reading the bucket; never compared. */
  writtenAt: string;
}

/** A lease as one replica sees it now. */
export interface LeaseView {
  /** free: absent or released; held: renewed within its ttl as far as this replica saw; expired: not. */
  state: 'free' | 'held' | 'expired';
  holder?: string;
  /** undefined when there is no object. */
  etag?: string;
  /** held: how long until this replica judges it expired unless it changes meanwhile (its ttl from this replica's first sight of it). */
  expiresInMs?: number;
}

const now = (): number => performance.now();

/** A unique holder id for this process (a restarted replica must not believe it still holds). */
export function newHolderId(name = os.hostname()): string {
  return `${name}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

function parseBody(body: Buffer): LeaseBody | undefined {
  try {
    const b = JSON.parse(body.toString('utf8')) as Partial<LeaseBody>;
    if (typeof b.holder !== 'string' || (b.state !== 'held' && b.state !== 'released') || typeof b.ttlMs !== 'number') return undefined;
    return b as LeaseBody;
  } catch {
    return undefined;
  }
}

function resolved(t: LeaseTiming): Required<LeaseTiming> {
  const ttlMs = t.ttlMs ?? 5000;
  return { ttlMs, renewEveryMs: t.renewEveryMs ?? ttlMs / 3, jitter: t.jitter ?? 0.2, marginMs: t.marginMs ?? ttlMs / 5 };
}

const key = (name: string): string => `leases/${name}`;
/** Sightings kept before old ones are dropped. */
const SEEN_LIMIT = 1024;

/** One replica's side of the cluster's leases: takes them, and judges others' expiry by its own clock. */
export class Leases {
  /** The etag last seen per lease and since when (monotonic), with the ttl its holder declared. */
  private readonly seen = new Map<string, { etag: string; since: number; ttlMs: number }>();
  private readonly timing: LeaseTiming;

  constructor(
    readonly objects: ClusterObjects,
    readonly holder: string = newHolderId(),
    timing: LeaseTiming = {},
    /** Told when a held lease is lost (log it); the lease's signal aborts as well. */
    private readonly onLost?: (err: LeaseLostError) => void,
  ) {
    this.timing = timing;
  }

  /** Reads the lease and judges it: a holder whose etag this replica saw unchanged for its ttl has expired. */
  async inspect(name: string, signal?: AbortSignal): Promise<LeaseView> {
    const obj = await this.objects.get(key(name), signal);
    if (!obj) {
      this.seen.delete(name);
      return { state: 'free' };
    }
    const body = parseBody(obj.body);
    if (body?.state === 'released') {
      this.seen.delete(name);
      return { state: 'free', holder: body.holder, etag: obj.etag };
    }
    const ttlMs = body?.ttlMs ?? resolved(this.timing).ttlMs;
    const last = this.seen.get(name);
    if (!last || last.etag !== obj.etag) {
      if (this.seen.size >= SEEN_LIMIT) this.forgetOld();
      this.seen.set(name, { etag: obj.etag, since: now(), ttlMs });
      return { state: 'held', holder: body?.holder, etag: obj.etag, expiresInMs: ttlMs };
    }
    const left = last.ttlMs - (now() - last.since);
    return left <= 0 ? { state: 'expired', holder: body?.holder, etag: obj.etag } : { state: 'held', holder: body?.holder, etag: obj.etag, expiresInMs: left };
  }

  /** One attempt: takes the lease when it is free or seen expired; undefined when someone holds it. */
  async tryTake(name: string, timing: LeaseTiming = {}, signal?: AbortSignal): Promise<HeldLease | undefined> {
    const view = await this.inspect(name, signal);
    if (view.state === 'held') return undefined;
    const t = resolved({ ...this.timing, ...timing });
    const body = this.body('held', t.ttlMs, 0);
    const sentAt = now();
    const etag = await this.objects.put(key(name), body, view.etag === undefined ? { ifAbsent: true } : { ifMatch: view.etag });
    if (etag === undefined) return undefined;
    this.seen.delete(name);
    return new HeldLease(this, name, etag, sentAt, t, this.onLost);
  }

  /** Waits until the lease is taken (polling every pollMs, default ttl/5, jittered); rejects when signal aborts. */
  async take(name: string, opts: LeaseTiming & { signal?: AbortSignal; pollMs?: number } = {}): Promise<HeldLease> {
    const { signal, pollMs, ...timing } = opts;
    const every = pollMs ?? resolved({ ...this.timing, ...timing }).ttlMs / 5;
    for (;;) {
      signal?.throwIfAborted();
      const lease = await this.tryTake(name, timing, signal);
      if (lease) return lease;
      await sleep(every * (0.8 + 0.4 * Math.random()), undefined, { signal });
    }
  }

  /** @internal The lease's etag when its object is exactly `body` (every write's nonce is new: that write landed). */
  async written(name: string, body: string): Promise<string | undefined> {
    const obj = await this.objects.get(key(name));
    return obj?.body.toString('utf8') === body ? obj.etag : undefined;
  }

  /** Drops sightings far older than their ttl: a lease looked at once and never again (a transfer followed to its end). */
  private forgetOld(): void {
    const t = now();
    for (const [name, s] of this.seen) if (t - s.since > 4 * s.ttlMs) this.seen.delete(name);
  }

  /** @internal */
  body(state: LeaseBody['state'], ttlMs: number, seq: number): string {
    const b: LeaseBody = { v: 1, holder: this.holder, state, ttlMs, seq, nonce: randomBytes(6).toString('hex'), writtenAt: new Date().toISOString() };
    return JSON.stringify(b);
  }
}

/** A lease this replica holds: renewed in the background until released or lost. */
export class HeldLease {
  private readonly controller = new AbortController();
  private validUntil: number;
  private seq = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private renewing: Promise<boolean> | undefined;
  private released = false;
  /** When the deadline passed (monotonic); undefined while valid. */
  private overdueSince: number | undefined;
  /** Callers of untilValid() waiting for a renewal's verdict. */
  private waiters: Array<() => void> = [];
  /** The body of the last renewal that failed without an answer: it may have landed all the same. */
  private unanswered: string | undefined;

  /** @internal Made by Leases.tryTake. */
  constructor(
    private readonly leases: Leases,
    readonly name: string,
    private etag: string,
    sentAt: number,
    private readonly timing: Required<LeaseTiming>,
    private readonly onLost?: (err: LeaseLostError) => void,
  ) {
    this.validUntil = sentAt + timing.ttlMs - timing.marginMs;
    this.armDeadline();
    this.scheduleRenew(timing.renewEveryMs);
  }

  get holder(): string {
    return this.leases.holder;
  }

  /** Aborts (reason: LeaseLostError) the moment the lease is lost or released: stop writing. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Still ours by this replica's clock: check it right before each write the lease protects. */
  get valid(): boolean {
    return !this.signal.aborted && now() < this.validUntil;
  }

  /** Resolves once the lease is valid (at once, unless a renewal is late); rejects with the LeaseLostError once it is lost instead. */
  async untilValid(): Promise<void> {
    while (!this.valid) {
      if (this.signal.aborted) throw this.signal.reason;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Renews now (the loop does it on its own); false when it could not (the lease may be lost: see signal). */
  renew(): Promise<boolean> {
    this.renewing ??= this.renewOnce().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  /** Stops renewing and marks the lease released, so another replica may take it at once. */
  async release(): Promise<void> {
    if (this.signal.aborted) return;
    this.released = true;
    this.stop(new LeaseLostError(this.name, 'released'));
    await this.renewing?.catch(() => false);
    await this.leases.objects.put(key(this.name), this.leases.body('released', this.timing.ttlMs, ++this.seq), { ifMatch: this.etag }).catch(() => undefined);
  }

  private async renewOnce(): Promise<boolean> {
    if (this.signal.aborted) return false;
    const sentAt = now();
    const body = this.leases.body('held', this.timing.ttlMs, ++this.seq);
    let etag: string | undefined;
    try {
      etag = await this.putRenewal(body);
      this.unanswered = undefined;
    } catch {
      this.unanswered = body;
      // Past the deadline, a renewal that failed gets no verdict: expired.
      if (this.overdueSince !== undefined) this.lose('expired');
      // RGW unreachable or slow: try again soon; the deadline decides when it is lost.
      if (!this.signal.aborted) this.scheduleRenew(Math.min(this.timing.renewEveryMs / 2, 500));
      return false;
    }
    if (etag === undefined) {
      this.lose('stolen');
      return false;
    }
    this.etag = etag;
    if (this.signal.aborted) {
      // It expired here while the renew was on its way, yet nobody had taken it: give it up properly.
      if (!this.released) await this.leases.objects.put(key(this.name), this.leases.body('released', this.timing.ttlMs, ++this.seq), { ifMatch: etag }).catch(() => undefined);
      return false;
    }
    this.validUntil = sentAt + this.timing.ttlMs - this.timing.marginMs;
    // A renewal that took longer than the lease's validity leaves it past due: the deadline renews again at once.
    this.armDeadline();
    if (this.validUntil > now()) {
      this.overdueSince = undefined;
      this.scheduleRenew(this.timing.renewEveryMs);
      this.wake();
    }
    return true;
  }

  /**
   * Writes `body` over the lease we hold; its etag, or undefined when another replica took it. A
   * 412 is not yet a theft: the write may be there after all (the client sent it again after an
   * answer was lost), or an earlier renewal whose answer was lost landed and moved the etag: then
   * the lease is still ours, and this renewal is written again over that one.
   */
  private async putRenewal(body: string): Promise<string | undefined> {
    const put = (ifMatch: string): Promise<string | undefined> => this.leases.objects.put(key(this.name), body, { ifMatch });
    const etag = (await put(this.etag)) ?? (await this.leases.written(this.name, body));
    if (etag !== undefined || this.unanswered === undefined) return etag;
    const earlier = await this.leases.written(this.name, this.unanswered);
    if (earlier === undefined) return undefined;
    this.etag = earlier;
    return (await put(earlier)) ?? (await this.leases.written(this.name, body));
  }

  private scheduleRenew(ms: number): void {
    clearTimeout(this.renewTimer);
    const j = this.timing.jitter;
    this.renewTimer = setTimeout(() => void this.renew(), ms * (1 - j + 2 * j * Math.random()));
    this.renewTimer.unref();
  }

  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => this.overdue(), Math.max(0, this.validUntil - now()));
    this.deadlineTimer.unref();
  }

  /** The deadline passed: a renewal (the one in flight, or one now) decides, within another ttl; then it expired. */
  private overdue(): void {
    if (this.signal.aborted) return;
    this.overdueSince ??= now();
    const left = this.overdueSince + this.timing.ttlMs - now();
    if (left <= 0) {
      this.lose('expired');
      return;
    }
    void this.renew();
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => this.overdue(), left);
    this.deadlineTimer.unref();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private lose(reason: 'stolen' | 'expired'): void {
    if (this.signal.aborted) return;
    const err = new LeaseLostError(this.name, reason);
    this.stop(err);
    this.onLost?.(err);
  }

  private stop(reason: LeaseLostError): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.deadlineTimer);
    this.controller.abort(reason);
    this.wake();
  }
}
