/**
 * Which replicas of the cluster are alive, and what each one says about itself, from heartbeats
 * in the bucket: every replica rewrites `replicas/<id>` every intervalMs (jittered) with its
 * state, then lists `replicas/` and reads the heartbeats that changed.
 *
 * Liveness follows the rule of the leases (lease.ts), for the same reason: no wall-clock time is
 * compared between machines. A replica is alive while this replica has seen its heartbeat's etag
 * change within ttlMs of its own monotonic clock (every write carries a fresh seq, so every write
 * changes the etag). A heartbeat unchanged for 10 ttls is a replica long dead: any replica removes
 * it (the key is the dead one's own; were it alive after all, its next beat writes it again).
 *
 * Cost per replica and beat: one PUT, one LIST, one GET per other live replica. Fine for the few
 * replicas of a site; a cluster of dozens would want the state elsewhere (see docs/cluster.md).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterObjects } from './objects.ts';

export interface ReplicaView<State> {
  id: string;
  state: State;
}

export interface ReplicasOptions<State> {
  /** This replica's id: unique in the cluster, new for each process (lease.ts newHolderId). */
  id: string;
  /** What this replica says about itself in each heartbeat. */
  state: () => State;
  /** Time between heartbeats (default 1000 ms, ±20%). */
  intervalMs?: number;
  /** A replica whose heartbeat did not change for this long is dead (default 3 intervals). */
  ttlMs?: number;
  /** A heartbeat round failed (RGW unreachable): the last view is kept meanwhile. */
  onError?: (err: unknown) => void;
}

interface Seen<State> {
  etag: string;
  /** Monotonic time this replica first saw that etag. */
  since: number;
  state: State | undefined;
}

const PREFIX = 'replicas/';

export class Replicas<State> {
  readonly id: string;
  private readonly seen = new Map<string, Seen<State>>();
  private readonly intervalMs: number;
  private readonly ttlMs: number;
  private seq = 0;
  private running: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly objects: ClusterObjects, private readonly opts: ReplicasOptions<State>) {
    this.id = opts.id;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.ttlMs = opts.ttlMs ?? 3 * this.intervalMs;
  }

  /**
   * Beats once (so the view is current when this resolves), then keeps beating. Never rejects: a
   * store that is down now is reported to onError and tried again at the next beat.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = new AbortController();
    await this.beat().catch((err: unknown) => this.opts.onError?.(err));
    const signal = this.running.signal;
    this.loop = (async () => {
      while (!signal.aborted) {
        try {
          await sleep(this.intervalMs * (0.8 + 0.4 * Math.random()), undefined, { signal });
          await this.beat(signal);
        } catch (err) {
          if (!signal.aborted) this.opts.onError?.(err);
        }
      }
    })();
  }

  /** Stops beating; `leave` (the default) removes this replica's heartbeat so the others see it gone at once. */
  async stop(opts: { leave?: boolean } = {}): Promise<void> {
    this.running?.abort();
    await this.loop;
    this.running = undefined;
    if (opts.leave ?? true) await this.objects.delete(PREFIX + this.id).catch((err: unknown) => this.opts.onError?.(err));
  }

  /** The replicas alive as this one sees them (itself included), by id. */
  live(): Array<ReplicaView<State>> {
    const t = performance.now();
    const out: Array<ReplicaView<State>> = [{ id: this.id, state: this.opts.state() }];
    for (const [id, s] of this.seen) {
      if (id !== this.id && s.state !== undefined && t - s.since < this.ttlMs) out.push({ id, state: s.state });
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** One heartbeat round: write ours, list all, read those that changed, forget the long dead. */
  async beat(signal?: AbortSignal): Promise<void> {
    const body = JSON.stringify({ v: 1, id: this.id, seq: ++this.seq, state: this.opts.state(), writtenAt: new Date().toISOString() });
    await this.objects.put(PREFIX + this.id, body);
    const listed = await this.objects.list(PREFIX);
    const t = performance.now();
    const present = new Set<string>();
    await Promise.all(
      listed.map(async ({ key, etag }) => {
        const id = key.slice(PREFIX.length);
        present.add(id);
        if (id === this.id) return;
        const last = this.seen.get(id);
        if (last?.etag === etag) {
          if (t - last.since > 10 * this.ttlMs) await this.objects.delete(key);
          return;
        }
        const obj = await this.objects.get(key, signal);
        const state = obj ? parseState<State>(obj.body) : undefined;
        this.seen.set(id, { etag: obj?.etag ?? etag, since: t, state });
      }),
    );
    for (const id of this.seen.keys()) if (!present.has(id)) this.seen.delete(id);
  }
}

function parseState<State>(body: Buffer): State | undefined {
  try {
    return (JSON.parse(body.toString('utf8')) as { state?: State }).state;
  } catch {
    return undefined;
  }
}
