/**
 * Single flight across replicas, the follower's side: a TransferStarter around the engine's whose
 * transfers run on ClusterPartialBlobs (cluster-partials.ts). Its `open` decides who transfers:
 *
 *   holder     the engine's transfer runs here as on a lone mirror (its readers, its done).
 *   elsewhere  another replica holds the digest (TransferElsewhereError): every reader here is a
 *              follow reader (follow-reader.ts) over the bucket's bytes, `done` waits for the
 *              holder's `done` and then links the blob here (afterCommit). When the holder dies,
 *              the first reader (or `done`) to notice starts the engine's transfer here again:
 *              its `open` claims the digest, and this replica continues from the pieces the dead
 *              one left (or another replica won the claim and is followed).
 *   committed  the blob went in between the mirror's check and the claim (BlobCommittedError):
 *              readers read it, `done` links it.
 *
 * A holder that loses its lease (a pause past its ttl, a store too slow to renew it) fails its
 * writes: the engine's transfer fails, and the replica that takes the lease continues it. Readers
 * here do not fail with it: each goes on from its offset in the mode a new claim finds (following
 * the new holder, mostly), and so does `done`.
 */
import type { Readable } from 'node:stream';
import type { RunningTransfer, TransferSpec, TransferStarter } from '../mirror/transfers.ts';
import type { TransferSnapshot } from '../transfer/transfer.ts';
import { BlobCommittedError, TransferElsewhereError } from './cluster-partials.ts';
import { createFollowReader } from './follow-reader.ts';
import { interruptibleFrom } from './interruptible-from.ts';
import { LeaseLostError } from './lease.ts';
import { TransferOrphanedError, type ProgressWatcher } from './progress-watcher.ts';
import { TransferFencedError } from './progress.ts';

type Mode = { kind: 'holder'; transfer: RunningTransfer } | { kind: 'elsewhere'; watcher: ProgressWatcher } | { kind: 'committed' };

/** The engine's transfers, each run here or followed from the replica that holds it. */
export function clusterTransferStarter(engine: TransferStarter): TransferStarter {
  return (spec) => new ClusterTransfer(spec, engine);
}

class ClusterTransfer implements RunningTransfer {
  readonly done: Promise<unknown>;
  readonly firstByte: Promise<void>;
  private mode: Promise<Mode>;
  private takingOver: Promise<Mode> | undefined;
  private readonly ctrl = new AbortController();
  private readonly followers = new Set<Readable>();
  private readonly startedAt = Date.now();

  constructor(private readonly spec: TransferSpec, private readonly engine: TransferStarter) {
    this.mode = this.startHere();
    this.mode.catch(() => {});
    this.done = this.run();
    this.done.catch(() => {});
    this.firstByte = this.mode.then((m) => (m.kind === 'holder' ? m.transfer.firstByte : undefined));
    this.firstByte.catch(() => {});
  }

  get digest(): string {
    return this.spec.digest;
  }

  get size(): number {
    return this.spec.size;
  }

  createReader(start: number, end: number): Readable {
    const reading: { source?: Readable } = {};
    // A client gone is a reader gone, also while the source waits (a body held until verified).
    return interruptibleFrom(this.read(start, end, reading), () => reading.source?.destroy());
  }

  abort(reason = 'transfer aborted'): void {
    this.ctrl.abort(new Error(reason));
    void this.mode.then((m) => (m.kind === 'holder' ? m.transfer.abort(reason) : undefined), () => {});
    for (const f of this.followers) f.destroy(new Error(reason));
  }

  snapshot(): TransferSnapshot {
    const holder = this.current;
    if (holder) return holder.snapshot();
    return {
      digest: this.digest, size: this.size, state: this.ctrl.signal.aborted ? 'aborted' : 'running', mode: 'stream',
      bytesDone: 0, contiguousBytes: 0, resumedBytes: 0, bytesFetched: 0, rate: 0, etaSeconds: undefined,
      activeConnections: 0, concurrency: 0, retries: 0, chunkSize: 0, chunksTotal: 0, chunksDone: 0, chunksRefetched: 0,
      stallCuts: 0, tailSplits: 0, tailCopies: 0,
      elapsedMs: Date.now() - this.startedAt,
    };
  }

  /** The engine's transfer while this replica holds the digest. */
  private current: RunningTransfer | undefined;

  /** Starts the engine's transfer here; its open claims the digest, which decides the mode. */
  private async startHere(): Promise<Mode> {
    const transfer = this.engine(this.spec);
    try {
      await (transfer.firstByte ?? Promise.resolve());
    } catch (err) {
      if (err instanceof TransferElsewhereError) return { kind: 'elsewhere', watcher: err.watcher };
      if (err instanceof BlobCommittedError) return { kind: 'committed' };
      throw err;
    }
    this.current = transfer;
    return { kind: 'holder', transfer };
  }

  /** Bytes start..end (inclusive): from the holder here, the store, or the bucket as the holder elsewhere fills it. */
  private async *read(start: number, end: number, reading: { source?: Readable }): AsyncGenerator<Buffer> {
    let offset = start;
    for (;;) {
      const mode = await this.mode;
      const source = mode.kind === 'holder'
        ? mode.transfer.createReader(offset, end)
        : mode.kind === 'committed'
          ? await this.spec.partials.read(this.digest, { start: offset, end })
          : this.follow(mode.watcher, offset, end + 1);
      reading.source = source;
      try {
        for await (const chunk of source) {
          offset += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
        return;
      } catch (err) {
        if (mode.kind !== 'holder' || !(await this.lostLease(mode.transfer))) throw err;
      } finally {
        source.destroy();
      }
    }
  }

  /** Whether the holder here failed because it lost its lease; then the transfer is claimed again (once for every reader). */
  private async lostLease(transfer: RunningTransfer): Promise<boolean> {
    // A reader failing while the transfer runs (bytes it sent were fetched again) fails as before.
    if (transfer.snapshot().state === 'running') return false;
    const err = await transfer.done.then(() => undefined, (e: unknown) => e);
    if (!(err instanceof LeaseLostError || err instanceof TransferFencedError) || this.ctrl.signal.aborted) return false;
    const mode = await this.mode;
    if (mode.kind === 'holder' && mode.transfer === transfer) await this.takeOver();
    return true;
  }

  /** The holder died: claim again (one claim at a time for every reader of this transfer). */
  private takeOver(): Promise<Mode> {
    this.takingOver ??= this.startHere().then((mode) => {
      // Readers from now on read what this replica holds (or follow the new holder).
      this.mode = Promise.resolve(mode);
      if (mode.kind !== 'holder') this.current = undefined;
      return mode;
    }).finally(() => {
      this.takingOver = undefined;
    });
    return this.takingOver;
  }

  private follow(watcher: ProgressWatcher, start: number, end: number): Readable {
    const reader = createFollowReader({
      watcher,
      start,
      end,
      readRange: (s, e) => this.spec.partials.read(this.digest, { start: s, end: e - 1 }),
      onOrphaned: async () => {
        this.ctrl.signal.throwIfAborted();
        await this.takeOver();
      },
    });
    this.followers.add(reader);
    reader.once('close', () => this.followers.delete(reader));
    return reader;
  }

  private async run(): Promise<unknown> {
    let mode = await this.mode;
    for (;;) {
      if (mode.kind === 'holder') {
        const transfer = mode.transfer;
        try {
          return await transfer.done;
        } catch (err) {
          if (!(await this.lostLease(transfer))) throw err;
          mode = await this.mode;
          continue;
        }
      }
      if (mode.kind === 'committed') return this.spec.afterCommit();
      try {
        const progress = await mode.watcher.until(this.size, this.ctrl.signal);
        if (progress.done) return await this.spec.afterCommit();
      } catch (err) {
        if (!(err instanceof TransferOrphanedError)) throw err;
        this.ctrl.signal.throwIfAborted();
        mode = await this.takeOver();
      }
    }
  }
}
