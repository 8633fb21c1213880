/**
 * Follows the live pull-through transfers of a Transfers: samples each one's snapshot every
 * second (upstream bytes, retries, goodput), writes a progress log line every ~10 s for long
 * transfers, and gives the status page its rows. The tracker asks nothing of the transfers except
 * their events ('started', 'committed', 'failed') and `transfer.snapshot()`.
 */
import type { TransferHandle } from '../mirror/transfers.ts';
import type { Logger } from '../log/logger.ts';
import type { TransferSnapshot } from '../transfer/transfer.ts';

export interface TransfersLike {
  readonly active: TransferHandle[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
  on(event: string, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
  off(event: string, listener: (...args: any[]) => void): unknown;
}

export interface TransferRow {
  digest: string;
  repository: string;
  upstream: string;
  size: number;
  startedAt: number;
  elapsedMs: number;
  bytesDone: number;
  contiguousBytes: number;
  resumedBytes: number;
  rate: number;
  etaSeconds: number | undefined;
  connections: number;
  concurrency: number;
  retries: number;
  chunksDone: number;
  chunksTotal: number;
  state: string;
}

export interface TransferOutcome {
  digest: string;
  repository: string;
  upstream: string;
  ok: boolean;
  error?: string;
  snapshot: TransferSnapshot;
}

export interface TransferTrackerOptions {
  logger: Logger;
  onUpstreamBytes?: (upstream: string, bytes: number) => void;
  onRetries?: (upstream: string, retries: number) => void;
  onFinished?: (outcome: TransferOutcome) => void;
  sampleMs?: number;
  progressLogMs?: number;
}

interface Tracked {
  transfer: TransferHandle;
  upstream: string;
  bytesFetched: number;
  retries: number;
  lastLogAt: number;
}

export class TransferTracker {
  private readonly tracked = new Map<string, Tracked>();
  private readonly timer: NodeJS.Timeout;
  private readonly progressLogMs: number;

  private readonly onStarted = (transfer: TransferHandle): void => {
    this.track(transfer);
  };
  private readonly onCommitted = (e: { digest: string }): void => {
    this.finish(e.digest, true);
  };
  private readonly onFailed = (e: { digest: string; error?: unknown }): void => {
    this.finish(e.digest, false, e.error);
  };

  constructor(private readonly transfers: TransfersLike, private readonly opts: TransferTrackerOptions) {
    this.progressLogMs = opts.progressLogMs ?? 10_000;
    transfers.on('started', this.onStarted);
    transfers.on('committed', this.onCommitted);
    transfers.on('failed', this.onFailed);
    for (const f of transfers.active) this.track(f);
    this.timer = setInterval(() => this.sample(), opts.sampleMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.transfers.off('started', this.onStarted);
    this.transfers.off('committed', this.onCommitted);
    this.transfers.off('failed', this.onFailed);
  }

  get activeCount(): number {
    return this.transfers.active.length;
  }

  /** Takes the deltas of every live transfer; called by the timer and before each read. */
  sample(now = Date.now()): void {
    for (const f of this.transfers.active) if (!this.tracked.has(f.digest)) this.track(f);
    for (const t of this.tracked.values()) {
      const snap = t.transfer.transfer.snapshot();
      this.account(t, snap);
      if (now - t.lastLogAt >= this.progressLogMs && snap.state === 'running') {
        t.lastLogAt = now;
        this.opts.logger.info({
          digest: t.transfer.digest,
          repository: t.transfer.repository,
          upstream: t.upstream,
          bytes: snap.size,
          bytesDone: snap.bytesDone,
          percent: snap.size > 0 ? Math.floor((snap.bytesDone * 1000) / snap.size) / 10 : 100,
          mbps: Math.round(snap.rate / 1e4) / 100,
          etaSeconds: snap.etaSeconds === undefined ? undefined : Math.round(snap.etaSeconds),
          connections: snap.activeConnections,
          retries: snap.retries,
        }, 'transfer progress');
      }
    }
  }

  rows(now = Date.now()): TransferRow[] {
    this.sample(now);
    return this.transfers.active.map((transfer): TransferRow => {
      const s = transfer.transfer.snapshot();
      return {
        digest: transfer.digest,
        repository: transfer.repository,
        upstream: transfer.upstream,
        size: transfer.size,
        startedAt: transfer.startedAt,
        elapsedMs: now - transfer.startedAt,
        bytesDone: s.bytesDone,
        contiguousBytes: s.contiguousBytes,
        resumedBytes: s.resumedBytes,
        rate: s.rate,
        etaSeconds: s.etaSeconds,
        connections: s.activeConnections,
        concurrency: s.concurrency,
        retries: s.retries,
        chunksDone: s.chunksDone,
        chunksTotal: s.chunksTotal,
        state: s.state,
      };
    }).sort((a, b) => a.startedAt - b.startedAt);
  }

  private track(transfer: TransferHandle): void {
    if (this.tracked.has(transfer.digest)) return;
    this.tracked.set(transfer.digest, { transfer, upstream: transfer.upstream, bytesFetched: 0, retries: 0, lastLogAt: Date.now() });
  }

  private account(t: Tracked, snap: TransferSnapshot): void {
    const bytes = snap.bytesFetched - t.bytesFetched;
    const retries = snap.retries - t.retries;
    t.bytesFetched = snap.bytesFetched;
    t.retries = snap.retries;
    if (bytes > 0) this.opts.onUpstreamBytes?.(t.upstream, bytes);
    if (retries > 0) this.opts.onRetries?.(t.upstream, retries);
  }

  private finish(digest: string, ok: boolean, error?: unknown): void {
    const t = this.tracked.get(digest);
    if (!t) return;
    this.tracked.delete(digest);
    const snap = t.transfer.transfer.snapshot();
    this.account(t, snap);
    const outcome: TransferOutcome = { digest, repository: t.transfer.repository, upstream: t.upstream, ok, snapshot: snap };
    if (!ok) outcome.error = error instanceof Error ? error.message : error === undefined ? 'failed' : String(error);
    // Transfers logs the completion with its figures; a stop says how much stays on disk.
    if (!ok) {
      this.opts.logger.info({
        digest,
        repository: t.transfer.repository,
        upstream: t.upstream,
        outcome: snap.state,
        bytes: snap.size,
        bytesDone: snap.bytesDone,
        bytesFetched: snap.bytesFetched,
        resumedBytes: snap.resumedBytes,
        retries: snap.retries,
        durationMs: snap.elapsedMs,
      }, 'transfer stopped');
    }
    this.opts.onFinished?.(outcome);
  }
}
