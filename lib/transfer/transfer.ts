/**
 * One blob transfer: chunked, parallel, resumable, verified.
 *
 * The bytes go to a partial blob (lib/storage/partial-blobs.ts: positional writes, the ranges held,
 * what a restart resumes). Order of a transfer: open the partial blob (resuming what it holds) ->
 * fetch what is missing (one request for a small blob, chunks in parallel otherwise, one resumable
 * stream when the source ignores Range) -> the prefix hash reaches the size -> compare the digest
 * -> commit the partial blob into the blob store -> afterCommit (the caller links it) -> release
 * the last byte.
 *
 * Pieces (chunk-plan.ts:pieceSizeFor; a chunk, what a request asks, spans several) are what a
 * corruption costs. With piece digests (a ferry relay's /chunks at this transfer's piece size; a
 * blob of one piece is its own digest) each piece is checked as it completes, and only checked
 * pieces reach the prefix hash and so the readers; a bad piece is fetched again alone, for as
 * long as repairSeconds allows since the last good one.
 * Without them (a direct upstream) only the blob digest proves a byte good: readers get nothing
 * until it matched (transfer.holdUnverified, on by default on a mirror; a relay streams, its readers
 * check pieces themselves), and a mismatch fetches pieces again and keeps what two copies agree
 * on (piece-agreement.ts), starting where a gzip layer's bytes show the damage (gzip-damage.ts).
 * Streaming such bytes, a mismatch cuts the readers already sent some; their retries are served
 * from the repaired copy. DigestMismatchError (sameBytes) when the
 * upstream serves the same wrong bytes again and again. Readers (prefix-reader.ts) see the hashed
 * prefix, minus the last byte until the digest matched.
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireDigest, type Algorithm } from '../oci/digest.ts';
import { chunkSizeFor, pieceSizeFor, planChunks, planMissing } from './chunk-plan.ts';
import { LinkBudget, type LinkShare, type RequestHandover } from './link-budget.ts';
import { findBadChunks, pieceDigestsFor } from './chunk-digests.ts';
import { DamageFollower, locateDamage } from './gzip-damage.ts';
import { repairByAgreement, RepairDeadlineError } from './piece-agreement.ts';
import { bareHex, PieceChecks } from './piece-check.ts';
import { DigestMismatchError, TransferDeadlineError, LocalIoError, RangeIgnoredError, SizeMismatchError, StallError, TransferAbortedError, UpstreamStatusError } from './errors.ts';
import { PrefixHasher } from './prefix-hasher.ts';
import { fetchRange, linkedController, liveRange, type FetchContext, type FetchMode, type LiveRange } from './range-fetcher.ts';
import { RangeSet } from './range-set.ts';
import type { ChunkDigests, RangeSource } from './range-source.ts';
import { RateMeter } from './rate-meter.ts';
import { RETRY_POLICIES, type RetryPolicy } from '../retry/policy.ts';
import { createPrefixReader } from './prefix-reader.ts';
import { tuningOf, type TransferTuning } from './tuning.ts';
import { planTail, TAIL_MIN_PIECE_BYTES } from './tail-plan.ts';
import { loopLag } from './loop-lag.ts';
import { TailRates } from './tail-rates.ts';
import type { ByteRange } from '../oci/range.ts';
import type { PartialBlob, PartialBlobStorage, PartialReader } from '../storage/partial-blobs.ts';
import type { BlobStream } from '../storage/storage.ts';

export interface TransferOptions {
  /** "sha256:<hex>". */
  digest: string;
  /** From the manifest descriptor. */
  size: number;
  source: RangeSource;
  /** Where the bytes go while they arrive, and what commits them into the blob store. */
  partials: PartialBlobStorage;
  /** Over TRANSFER_DEFAULTS (tuning.ts). */
  config?: Partial<TransferTuning>;
  /**
   * Called once the verified blob is in the blob store, before its last byte is released (the
   * mirror links it into the cache repository). A throw fails the transfer.
   */
  afterCommit?: () => Promise<void>;
  /**
   * Record progress inside a chunk every this many bytes (default 16 KiB): what a kill -9 can
   * cost, per connection (PartialBlob.record: one append; durable once a second).
   */
  checkpointBytes?: number;
  /**
   * The link this transfer shares with others to the same upstream (link-budget.ts): the total
   * concurrency adapts there. Without one, the transfer adapts alone on a link of its own.
   */
  link?: LinkBudget;
  /** The image this blob is fetched for, if fetched with its others (a prefetch): its link serves them oldest first (LinkShare.group). */
  linkGroup?: string;
  /** How often concurrency is reconsidered on a link of its own (default 1000 ms). */
  adaptIntervalMs?: number;
  /** Over RETRY_POLICIES.transfer; the attempts per chunk come from transfer.retries. */
  retryPolicy?: Partial<Omit<RetryPolicy, 'attempts'>>;
  /** How often `progress` is emitted while running (default 500 ms). */
  progressIntervalMs?: number;
  /** For jitter; tests pass a seeded one. */
  random?: () => number;
}

export type TransferState = 'running' | 'verified' | 'failed' | 'aborted';
export type TransferMode = 'single' | 'chunked' | 'stream';

export interface TransferSnapshot {
  digest: string;
  size: number;
  state: TransferState;
  mode: TransferMode;
  /** Bytes on disk, in any order. */
  bytesDone: number;
  /** The hashed, contiguous prefix on disk. */
  contiguousBytes: number;
  /** Bytes found on disk at start (resumed from a previous run). */
  resumedBytes: number;
  /** Bytes written by this run, refetches included. */
  bytesFetched: number;
  /** Goodput over the last few seconds, bytes/s. */
  rate: number;
  etaSeconds: number | undefined;
  activeConnections: number;
  concurrency: number;
  retries: number;
  chunkSize: number;
  chunksTotal: number;
  chunksDone: number;
  /** Pieces (of at most chunkSize) fetched again: they failed their check or a repair replaced them. */
  chunksRefetched: number;
  /** Requests cut for silence (the stall watch or the stallSeconds timer); each resumed where it stopped. */
  stallCuts: number;
  /** Straggling ranges of the tail split onto a free connection, and copied whole (first copy wins). */
  tailSplits: number;
  tailCopies: number;
  elapsedMs: number;
  error?: string;
}

export interface TransferResult {
  digest: string;
  size: number;
  bytesFetched: number;
  resumedBytes: number;
  retries: number;
  durationMs: number;
}

/** How often a source with piece digests is asked again while it has none yet. */
const PIECE_DIGESTS_RETRY_MS = 2000;

/** The least the tail's splits and copies of a transfer may cost in link bytes (tail-plan.ts), whatever the blob's size. */
const TAIL_LOSS_MIN_BYTES = 256 * 1024;

/** A piece that comes back wrong the same way this often: the upstream serves it so. */
const SAME_WRONG_PIECE_TIMES = 3;

/** Faults that say the far end is overloaded, not that the link dropped a connection. */
function isOverload(err: unknown): boolean {
  if (err instanceof UpstreamStatusError) return err.status === 429 || err.status === 503;
  return (err as { code?: string } | undefined)?.code === 'ECONNREFUSED';
}

export class Transfer extends EventEmitter {
  readonly digest: string;
  readonly hex: string;
  readonly size: number;
  /** Resolves with the result; rejects with a typed error (errors.ts). Never unhandled. */
  readonly done: Promise<TransferResult>;
  state: TransferState = 'running';
  mode: TransferMode;
  /** Bumped when bytes already released may have been wrong (a refetch after a mismatch). */
  generation = 0;
  error: Error | undefined;

  private readonly cfg: TransferTuning;
  private readonly opts: TransferOptions;
  private readonly algorithm: Algorithm;
  private readonly ctrl = new AbortController();
  private readonly written = new RangeSet();
  /** Goodput on the plain clock: the snapshot's rate and ETA, what a user waiting sees. */
  private readonly meter = new RateMeter();
  /** The rates the tail plan compares, on the ranges' clock (net of this process's own lag). */
  private readonly tailRates = new TailRates();
  private readonly link: LinkBudget;
  private share: LinkShare | undefined;
  /**
   * Resolves when the first byte is here (fetched or resumed; readers may have to wait longer for
   * it, see releasedBytes) or the blob is in; rejects when the transfer failed first.
   */
  readonly firstByte: Promise<void>;
  private firstByteHere: (() => void) | undefined;
  /** Resolves once every byte of the blob is written (unchecked, maybe). */
  private readonly allWritten: Promise<void>;
  private allWrittenHere: (() => void) | undefined;
  private readonly startedAt = performance.now();
  /** The size of the requests a fetch plans (chunk-plan.ts). */
  private readonly chunkSize: number;
  /** The units that are checked, and fetched again when wrong (chunk-plan.ts:pieceSizeFor). */
  private readonly pieceSize: number;
  private readonly pieces: ByteRange[];
  /** The blob in chunks, as snapshot() counts them (built once: progress is sampled every 500 ms per transfer). */
  private readonly chunks: readonly ByteRange[];
  /**
   * What the prefix hash may read: the pieces checked against their digests, or, without piece
   * digests, every byte written.
   */
  private readonly held = new RangeSet();
  /** Expected hex of each piece; undefined while the source is asked; null when it has none. */
  private pieceDigests: string[] | null | undefined;
  private piecesAnswered: Promise<void> = Promise.resolve();
  private checks: PieceChecks | undefined;
  /** Set while chunks are being fetched: queues a range on the running phase. */
  private refetch: ((r: ByteRange) => void) | undefined;
  /**
   * When the first piece that came back wrong since the last good one did (undefined while none
   * did): the repair window starts there, not at the last good piece, so on a link slower than
   * repairSeconds per piece one flip costs a piece, not the transfer.
   */
  private wrongSince: number | undefined;
  /** Pieces that came back wrong: the wrong digest and how often in a row. */
  private readonly wrongPieces = new Map<number, { actual: string; times: number }>();
  private part: PartialBlob | undefined;
  /** Reads the partial blob once it is open (nothing is hashed before). */
  private readonly hasher: PrefixHasher;
  /**
   * Where a gzip layer without piece digests shows damage, watched as its bytes are hashed the
   * first time: at a mismatch the first repair's place is known at once, not inflated from the
   * start again while the client waits. Spent (`damageWatched`) by the first repair.
   */
  private damageWatch: DamageFollower | undefined;
  private damageWatched = false;
  private digestMatched = false;
  /** The blob as hashed did not match: nothing is released until the hash starts again. */
  private suspect = false;
  private committing = false;
  private rangeIgnored = false;
  private active = 0;
  private retries = 0;
  private chunksRefetched = 0;
  private stallCuts = 0;
  private tailSplits = 0;
  private tailCopies = 0;
  private resumedBytes = 0;
  private bytesFetched = 0;
  private sizeDisagreements = 0;
  /** What the tail's splits and copies may still cost in link bytes: 0.5% of the blob, 256 KiB at least. */
  private tailLossBudget: number;
  private progressTimer: NodeJS.Timeout | undefined;
  /** Readers open now and clients waiting for a first byte: a client waits for this blob, so its requests go before a prefetch's (link-budget.ts). */
  private readers = 0;
  /** Bytes readers wait for past what is released (want()): their requests go first once queued. */
  private readonly wanted = new Map<number, number>();

  constructor(opts: TransferOptions) {
    super();
    const parsed = requireDigest(opts.digest);
    this.opts = opts;
    this.digest = parsed.digest;
    this.hex = parsed.hex;
    this.algorithm = parsed.algorithm;
    this.size = opts.size;
    this.cfg = tuningOf(opts.config);
    this.link = opts.link ?? new LinkBudget({
      minConnections: this.cfg.minConnections,
      maxConnections: this.cfg.maxConnections,
      ...(opts.adaptIntervalMs !== undefined ? { adaptIntervalMs: opts.adaptIntervalMs } : {}),
    });
    this.chunkSize = chunkSizeFor(this.size, this.cfg);
    this.pieceSize = pieceSizeFor(this.size, this.chunkSize, this.cfg.pieceBytes);
    this.pieces = planChunks(this.size, this.pieceSize);
    this.chunks = planChunks(this.size, this.chunkSize);
    this.tailLossBudget = Math.max(this.size / 200, TAIL_LOSS_MIN_BYTES);
    this.mode = this.size <= this.cfg.smallBlobBytes ? 'single' : 'chunked';
    setMaxListeners(0, this.ctrl.signal);
    // Every reader waiting for bytes listens here (a relay serves one reader per range request).
    this.setMaxListeners(0);
    this.hasher = new PrefixHasher({ read: (pos, into) => this.partial.read(pos, into) }, this.held, this.algorithm, () => this.advanced(), (pos, bytes) => this.watchDamage(pos, bytes));
    this.done = this.run();
    this.done.catch(() => {});
    this.allWritten = new Promise<void>((resolve) => {
      this.allWrittenHere = resolve;
    });
    this.firstByte = new Promise<void>((resolve, reject) => {
      this.firstByteHere = resolve;
      this.done.then(() => resolve(), reject);
    });
    this.firstByte.catch(() => {});
  }

  /** Bytes of the hashed prefix on disk. */
  get contiguousBytes(): number {
    return this.hasher.hashed;
  }

  /**
   * A client asked for this blob and waits for its first byte (its reader opens only then): its
   * requests go before a prefetch's from now on, not only once a byte came (a blob nobody reads
   * yet gets a connection only when no read blob waits for one, so it would wait for its own first
   * byte behind every other blob's requests). Call the returned function once it stops waiting.
   */
  clientWaits(): () => void {
    this.readers++;
    let done = false;
    return () => {
      if (!done) this.readers--;
      done = true;
    };
  }

  /** Bytes start..end (inclusive) as they become safe to send (prefix-reader.ts); errors if the transfer fails. */
  createReader(start = 0, end = this.size - 1): BlobStream {
    const reader = createPrefixReader(this, start, end);
    this.readers++;
    reader.once('close', () => this.readers--);
    return reader;
  }

  /**
   * What readers may have: the prefix, holding back the last byte until the digest matched; none
   * of it while no piece digest checks it and unverified bytes are held (transfer.holdUnverified).
   */
  get releasedBytes(): number {
    if (this.digestMatched) return this.size;
    if (this.withheld) return 0;
    return Math.min(this.contiguousBytes, Math.max(0, this.size - 1));
  }

  /** Nothing is released until the digest matched: the hash starts again, or no piece digest checks unverified bytes that are held. */
  private get withheld(): boolean {
    return this.suspect || (this.cfg.holdUnverified !== false && !this.pieceDigests);
  }

  /**
   * Where the bytes a reader at `pos` may have now end (exclusive): past the released prefix too,
   * the run of held bytes from `pos` (checked pieces, or every byte written where unverified bytes
   * stream: as safe as the prefix), so a relay serves a range of a blob it is still filling as soon
   * as its own transfer has those bytes, not once every byte before them arrived. Never the last
   * byte before the digest matched.
   */
  releasedEnd(pos: number): number {
    if (this.digestMatched || this.withheld) return this.releasedBytes;
    return Math.max(this.releasedBytes, Math.min(this.held.coveredEnd(pos), this.size - 1));
  }

  /**
   * A reader waits for byte `pos`: the queued request that would fetch it goes first among this
   * transfer's, now or once queued (a relay filling a blob fetches what its mirror asks before the
   * rest). Returns what the reader calls once it no longer waits.
   */
  want(pos: number): () => void {
    // Counted: two readers may wait for the same byte, and the first to stop waiting must not drop the other's.
    this.wanted.set(pos, (this.wanted.get(pos) ?? 0) + 1);
    this.share?.prefer(pos);
    return () => {
      const n = (this.wanted.get(pos) ?? 1) - 1;
      if (n > 0) this.wanted.set(pos, n);
      else this.wanted.delete(pos);
    };
  }

  /** Bytes hashed (in order, so stored): a gzip layer nothing else checks is watched for damage the first time through. */
  private watchDamage(pos: number, bytes: Uint8Array): void {
    // Only where bytes are held until verified (a mirror's client waits on the repair); a relay
    // streams to mirrors that check pieces, and an inflater per transfer costs it memory.
    if (pos === 0 && !this.damageWatch && !this.damageWatched && this.pieceDigests === null && this.pieces.length > 1 && this.cfg.holdUnverified !== false) {
      this.damageWatch = new DamageFollower({ read: (at, into) => this.partial.read(at, into) }, this.size);
    }
    this.damageWatch?.advance(pos + bytes.length, bytes);
  }

  /** What readers may have changed: tell them, and the partial blob (a cluster publishes it for other replicas' readers). */
  private advanced(): void {
    const released = this.releasedBytes;
    this.part?.release?.(released);
    this.emit('advance', released);
  }

  /**
   * Bytes of range (inclusive) as stored: of the partial blob, or of the blob once committed.
   * Only what releasedBytes covers is safe to send (prefix-reader.ts).
   */
  readStored(range: ByteRange): Promise<Readable> {
    return this.opts.partials.read(this.digest, range);
  }

  /**
   * Positional reads of the bytes as stored, into the caller's buffers, where the storage offers
   * them (PartialBlobStorage.openReader): a reader sends through pooled slabs with them. Only
   * what releasedBytes covers is safe to send.
   */
  get openStored(): (() => Promise<PartialReader>) | undefined {
    const open = this.opts.partials.openReader?.bind(this.opts.partials);
    return open ? () => open(this.digest) : undefined;
  }

  /** Stops the transfer; the partial blob stays for a later resume. Safe to call again. */
  abort(reason = 'transfer aborted'): void {
    if (this.state !== 'running' || this.committing || this.ctrl.signal.aborted) return;
    this.ctrl.abort(new TransferAbortedError(reason));
  }

  snapshot(): TransferSnapshot {
    const rate = this.meter.rate();
    const bytesDone = this.written.size;
    const chunks = this.chunks;
    const snap: TransferSnapshot = {
      digest: this.digest,
      size: this.size,
      state: this.state,
      mode: this.mode,
      bytesDone,
      contiguousBytes: this.contiguousBytes,
      resumedBytes: this.resumedBytes,
      bytesFetched: this.bytesFetched,
      rate,
      etaSeconds: this.state === 'running' && rate > 0 ? (this.size - bytesDone) / rate : undefined,
      activeConnections: this.active,
      concurrency: this.link.limit,
      retries: this.retries,
      chunkSize: this.chunkSize,
      chunksTotal: chunks.length,
      chunksDone: chunks.filter((c) => this.written.coveredEnd(c.start) > c.end).length,
      chunksRefetched: this.chunksRefetched,
      stallCuts: this.stallCuts,
      tailSplits: this.tailSplits,
      tailCopies: this.tailCopies,
      elapsedMs: Math.round(performance.now() - this.startedAt),
    };
    if (this.error) snap.error = this.error.message;
    return snap;
  }

  private async run(): Promise<TransferResult> {
    await Promise.resolve(); // let the caller attach listeners before the first event
    this.progressTimer = setInterval(() => this.emit('progress', this.snapshot()), this.opts.progressIntervalMs ?? 500);
    this.progressTimer.unref();
    // A blob of one piece (a config) is small: its request does not wait behind other blobs' ranges.
    const share = this.link.share(this.cfg.maxConnections, () => this.readers > 0, this.pieces.length === 1, this.opts.linkGroup);
    this.share = share;
    // Every transfer has a wall-clock bound: past it, it fails cleanly (the part stays to resume).
    const deadline = setTimeout(() => {
      if (!this.committing) this.ctrl.abort(new TransferDeadlineError(this.cfg.deadlineSeconds));
    }, Math.min(this.cfg.deadlineSeconds * 1000, 2 ** 31 - 1));
    deadline.unref();
    try {
      const result = await this.runSteps();
      this.emit('progress', this.snapshot());
      return result;
    } catch (e) {
      const err = this.ctrl.signal.aborted ? (this.ctrl.signal.reason as Error) : (e as Error);
      this.error = err;
      this.state = err instanceof TransferAbortedError ? 'aborted' : 'failed';
      this.ctrl.abort(err);
      // Wrong content goes; pieces checked against their digests stay for the next transfer to resume
      // (a link that corrupted everything for repairSeconds must not cost what arrived intact).
      await this.closePartial((err instanceof DigestMismatchError && (err.sameBytes || !this.pieceDigests)) || err instanceof SizeMismatchError);
      this.emit('progress', this.snapshot());
      this.emit('failed', err);
      throw err;
    } finally {
      clearTimeout(deadline);
      clearInterval(this.progressTimer);
      share.close();
    }
  }

  private async runSteps(): Promise<TransferResult> {
    await this.openPartial().catch((e: unknown) => {
      throw this.localIo(e);
    });
    const hasher = this.hasher;
    for (;;) {
      await this.fetchMissing();
      await this.piecesAnswered;
      await this.checks?.idle();
      this.ctrl.signal.throwIfAborted();
      // A piece that failed its check is missing again: fetch it again.
      if (this.written.coveredEnd(0) < this.size) continue;
      await this.partial.flush().catch((e: unknown) => {
        throw this.localIo(e);
      });
      hasher.catchUp();
      await hasher.idle();
      this.ctrl.signal.throwIfAborted();
      if (hasher.hashed !== this.size) throw new Error(`internal: prefix ${hasher.hashed} of ${this.size} after fetching`);
      const actual = hasher.digest();
      if (actual === this.digest) return this.commit(actual);
      this.suspect = true;
      this.part?.release?.(0);
      this.emit('mismatch', { expected: this.digest, actual });
      // Checked pieces that still make a wrong blob: the piece list contradicts the digest.
      if (this.pieceDigests) throw new DigestMismatchError(this.digest, actual, { detail: 'every piece matched the piece digests the source gave' });
      await this.repairUnchecked(actual);
    }
  }

  /**
   * The blob as written does not match and no piece was checked. Readers sent bytes are cut at
   * once; then either the source's piece digests (asked again: a relay has them once it holds the
   * blob) say which pieces are wrong, or every piece is fetched again and compared.
   */
  private async repairUnchecked(actual: string): Promise<void> {
    // The bytes were watched as they were hashed: the first place to look (bytes that change no longer are).
    const watched = this.damageWatch;
    this.damageWatch = undefined;
    this.damageWatched = true;
    let watchedDamage = watched?.whole ? watched.result().catch(() => undefined).finally(() => watched.stop()) : undefined;
    if (!watchedDamage) watched?.stop();
    this.held.clear();
    await this.restartHash();
    const list = await this.askPieceDigests();
    const bad = list ? await findBadChunks(this.partial, this.size, list, this.algorithm) : undefined;
    if (bad) {
      // The piece digests placed the damage: the watch's reading and inflating would be for nothing.
      watched?.stop();
      const expected = pieceDigestsFor(list, this.size, this.pieceSize);
      this.pieceDigests = expected ?? null;
      if (expected) this.startChecks(expected);
      for (const c of bad) {
        this.written.remove(c.start, c.end + 1);
        this.opts.source.rejected?.(c.start, c.end);
      }
      for (const i of this.intervalsOf(this.written)) this.held.add(i.start, i.end);
      this.chunksRefetched += bad.length;
      this.hasher.catchUp();
      return;
    }
    const outcome = await repairByAgreement({
      part: this.partial,
      size: this.size,
      // A source that ignores Range can only be compared whole.
      pieces: this.rangeIgnored ? [{ start: 0, end: this.size - 1 }] : this.pieces,
      algorithm: this.algorithm,
      digest: this.digest,
      deadline: performance.now() + this.cfg.repairSeconds * 1000,
      concurrency: this.cfg.maxConnections,
      signal: this.ctrl.signal,
      // A gzip layer's bytes say where a flip most likely is (a whole copy has no place to look).
      ...(this.rangeIgnored ? {} : {
        locate: (signal: AbortSignal) => {
          const first = watchedDamage;
          watchedDamage = undefined;
          return first ?? locateDamage(this.partial, this.size, signal);
        },
      }),
      // Pieces are asked as ranges even of a blob first fetched in one request ('single').
      fetchCopy: (piece, write, signal) => this.withConnection(signal, () => fetchRange(
        { ...this.fetchContext(), write: (pos, buf) => this.fetched(buf.length, () => write(pos, buf)), checkpoint: () => {} },
        liveRange(piece), this.rangeIgnored ? 'stream' : 'range', signal)),
      replaced: () => {
        this.chunksRefetched++;
      },
    }).catch((e: unknown) => {
      if (e instanceof RepairDeadlineError) throw new DigestMismatchError(this.digest, actual, { detail: e.message });
      if (e instanceof RangeIgnoredError && !this.rangeIgnored && !this.ctrl.signal.aborted) return 'ranges ignored' as const;
      throw e;
    }).finally(() => watched?.stop());
    if (outcome === 'ranges ignored') {
      // The source answers ranges with the whole blob: compare whole copies instead.
      this.rangeIgnored = true;
      this.mode = 'stream';
      return this.repairUnchecked(actual);
    }
    if (outcome === 'same') throw new DigestMismatchError(this.digest, actual, { sameBytes: true, detail: 'every piece fetched twice came back the same' });
    this.held.add(0, this.size);
    this.hasher.catchUp();
  }

  private intervalsOf(set: RangeSet): Array<{ start: number; end: number }> {
    return set.intervals.map((i) => ({ start: i.start, end: i.end }));
  }

  /** The partial blob, open from the first step to the last. */
  private get partial(): PartialBlob {
    if (!this.part) throw new Error('internal: the partial blob is not open');
    return this.part;
  }

  private async openPartial(): Promise<void> {
    this.part = await this.opts.partials.open(this.digest, this.size);
    for (const r of this.part.resumed) this.written.add(r.start, r.end + 1);
    this.resumedBytes = this.written.size;
    if (this.resumedBytes > 0) this.firstByteHere?.();
    if (this.pieces.length === 1) this.usePieceDigests([bareHex(this.digest)]);
    else if (!this.opts.source.chunkDigests) this.usePieceDigests(null);
    else this.piecesAnswered = this.waitForPieceDigests();
  }

  /** The source's piece digests at this transfer's piece size, or undefined (none, or none yet). */
  private async askPieceDigests(): Promise<ChunkDigests | undefined> {
    return this.opts.source.chunkDigests?.(this.pieceSize, this.ctrl.signal).catch(() => undefined);
  }

  /**
   * Asks for the piece digests until they come; meanwhile nothing is released. A relay has them
   * once it holds the blob (its side of the link is the fast one), and waits for its own transfer
   * when asked during one; but the first ask goes out beside the first range, and a relay asked
   * before that range reached it knows nothing of the blob yet: ask again as soon as the first byte
   * is here (the relay fetches it then), not PIECE_DIGESTS_RETRY_MS later (small-skopeo via a
   * relay: a 4 MiB layer held whole for 1.2 s, the pull's last second). Once every byte is here
   * without them, the blob digest alone decides, at once.
   */
  private async waitForPieceDigests(): Promise<void> {
    let firstByte: Promise<unknown> | undefined = this.firstByte;
    for (;;) {
      const got = pieceDigestsFor(await this.askPieceDigests(), this.size, this.pieceSize);
      if (got || this.ctrl.signal.aborted || this.written.coveredEnd(0) >= this.size) {
        this.usePieceDigests(got ?? null);
        return;
      }
      // Its own timer, cleared when another wake-up wins: no 2 s timer left behind per ask.
      const wait = new AbortController();
      const retry = sleep(PIECE_DIGESTS_RETRY_MS, undefined, { signal: AbortSignal.any([this.ctrl.signal, wait.signal]) });
      await Promise.race([retry, this.allWritten, ...(firstByte ? [firstByte] : [])]).catch(() => {});
      wait.abort();
      retry.catch(() => {});
      firstByte = undefined;
    }
  }

  private usePieceDigests(list: string[] | null): void {
    this.pieceDigests = list;
    if (list === null) {
      for (const i of this.intervalsOf(this.written)) this.held.add(i.start, i.end);
      this.hasher.catchUp();
      return;
    }
    this.startChecks(list);
    for (let i = 0; i < this.pieces.length; i++) this.checkIfComplete(i);
  }

  private startChecks(expected: readonly string[]): void {
    this.checks = new PieceChecks(() => this.partial, this.pieces, expected, this.algorithm, (i, good, actual) => this.pieceChecked(i, good, actual));
  }

  /** Piece i of the plan. */
  private piece(i: number): ByteRange {
    const p = this.pieces[i];
    if (!p) throw new Error(`internal: no piece ${i} of ${this.pieces.length}`);
    return p;
  }

  private checkIfComplete(i: number): void {
    const p = this.piece(i);
    if (this.written.coveredEnd(p.start) > p.end && this.held.coveredEnd(p.start) <= p.end) this.checks?.check(i);
  }

  private pieceChecked(i: number, good: boolean, actual: string): void {
    const p = this.piece(i);
    if (good) {
      this.wrongPieces.delete(i);
      this.wrongSince = undefined;
      this.held.add(p.start, p.end + 1);
      this.heldAhead(p.start);
      this.hasher.catchUp();
      return;
    }
    this.written.remove(p.start, p.end + 1);
    this.chunksRefetched++;
    this.opts.source.rejected?.(p.start, p.end);
    this.emit('badPiece', { index: i, start: p.start, end: p.end });
    const prior = this.wrongPieces.get(i);
    const times = prior?.actual === actual ? prior.times + 1 : 1;
    this.wrongPieces.set(i, { actual, times });
    const where = `piece ${p.start}-${p.end}`;
    if (times >= SAME_WRONG_PIECE_TIMES) {
      this.ctrl.abort(new DigestMismatchError(this.digest, `${this.algorithm}:${actual} for ${where}`, { sameBytes: true, detail: `${times} times in a row` }));
    } else if (performance.now() - (this.wrongSince ??= performance.now()) > this.cfg.repairSeconds * 1000) {
      this.ctrl.abort(new DigestMismatchError(this.digest, `${this.algorithm}:${actual} for ${where}`, { detail: `pieces kept arriving corrupted and none intact for ${this.cfg.repairSeconds} s (transfer.repairSeconds)` }));
    } else {
      this.refetch?.(p);
    }
  }

  /** After a mismatch: readers of the old bytes must fail, the partial blob must forget the bad ranges. */
  private async restartHash(): Promise<void> {
    const hasher = this.hasher;
    await hasher.reset();
    this.suspect = false;
    this.generation++;
    this.emit('reset', this.generation);
    await this.partial.resetHeld(this.written.intervals.map((i) => ({ start: i.start, end: i.end - 1 })));
    hasher.catchUp();
  }

  private async fetchMissing(): Promise<void> {
    if (this.written.coveredEnd(0) >= this.size) return;
    // A blob fetched in one request that lacks a piece (it failed its check, or a restart left
    // gaps) gets the missing ranges only, never the rest of the blob again. A small blob is one
    // request (to a source that may ignore Range too), which the tail still splits if it crawls.
    if (!this.rangeIgnored) {
      try {
        return await this.fetchChunks(this.mode === 'single' && this.written.size === 0);
      } catch (e) {
        if (!(e instanceof RangeIgnoredError) || this.ctrl.signal.aborted) throw e;
        this.rangeIgnored = true;
        this.mode = 'stream';
      }
    }
    // One request from the first missing byte to the end (a source without ranges).
    const from = this.written.coveredEnd(0);
    await this.withConnection(this.ctrl.signal, (handover) => fetchRange(this.fetchContext(), liveRange({ start: from, end: this.size - 1 }), 'stream', this.ctrl.signal, handover));
  }

  /**
   * Runs `fn` holding one of the link's connections; `range`, the bytes it fetches (a reader waiting
   * for them puts it first: want()). `fn` is given what to tell when its request nears its end
   * (LinkGrant.ending: the next request is asked then, hiding its round trip).
   */
  private async withConnection<T>(signal: AbortSignal, fn: (handover: RequestHandover) => Promise<T>, range?: ByteRange): Promise<T> {
    if (!this.share) throw new Error('internal: the transfer has no share of its link yet');
    const grant = await this.share.acquire(signal, range);
    try {
      return await fn(grant);
    } finally {
      grant();
    }
  }

  /** The missing ranges in parallel, or, `whole`, the blob in one request (that the tail may split). */
  private async fetchChunks(whole: boolean): Promise<void> {
    const phase = linkedController(this.ctrl.signal);
    const signal = phase.controller.signal;
    const running = new Set<LiveRange>();
    /** A range copied at the tail and its copy, each to the other; each running one's own controller. */
    const pairs = new Map<LiveRange, LiveRange>();
    const own = new Map<LiveRange, AbortController>();
    // A range cut for silence hands its rest to free connections (launch is defined below; called later).
    const ctx: FetchContext = { ...this.fetchContext(), stalled: (r) => this.spreadStalled(r, pairs, launch) };
    const pending: Array<Promise<void>> = [];
    let queued = 0;
    let first: { error: unknown } | undefined;
    const launch = (r: LiveRange, mode: FetchMode = 'range'): void => {
      queued++;
      pending.push(this.withConnection(signal, async (handover) => {
        queued--;
        const mine = linkedController(signal);
        // Its copy ended first while it waited for a connection.
        if (r.pos > r.end || this.written.coveredEnd(r.pos) > r.end) mine.controller.abort();
        running.add(r);
        own.set(r, mine.controller);
        try {
          await fetchRange(ctx, r, mode, mine.controller.signal, handover);
          this.tailRates.requestEnded(r);
          // First copy wins: the other is cancelled (what it lacks, this one wrote).
          const other = pairs.get(r);
          if (other) own.get(other)?.abort();
          if (other) other.end = Math.min(other.end, other.pos - 1);
        } catch (e) {
          if (signal.aborted || !mine.controller.signal.aborted) throw e;
        } finally {
          running.delete(r);
          own.delete(r);
          pairs.delete(r);
          mine.dispose();
        }
      }, r).then(() => {
        if (queued === 0 && !signal.aborted) tailSteps();
      }, (e: unknown) => {
        if (first) return;
        first = { error: e };
        // Queued chunks then leave the link's queue at once.
        phase.controller.abort(e);
      }));
    };
    // Connections also come free when other transfers on the link finish: look now and then.
    const tail = setInterval(() => {
      if (queued === 0 && !signal.aborted) tailSteps();
    }, 200);
    tail.unref();
    this.refetch = (r) => {
      if (!signal.aborted) launch(liveRange(r));
    };
    const tailSteps = (): void => this.splitTail(running, pairs, launch);
    try {
      // Every chunk queues on the link at once, lowest offset first; the link says how many run.
      if (whole) launch(liveRange({ start: 0, end: this.size - 1 }), 'stream');
      else for (const t of planMissing(this.size, this.requestBytes(), this.written)) launch(liveRange(t));
      for (const pos of this.wanted.keys()) this.share?.prefer(pos);
      // Splits add to `pending` while we wait.
      while (pending.length > 0) await pending.shift();
    } finally {
      this.refetch = undefined;
      clearInterval(tail);
      phase.dispose();
    }
    if (first) throw first.error;
  }

  /**
   * The tail of a transfer: nothing of ours waits for a connection, yet the link has some free.
   * The free connections take over the straggling ranges, by the time each still needs
   * (tail-plan.ts): split where both parts end together, or, too small to split, copied (the
   * first copy to end wins, the other is cancelled).
   */
  private splitTail(running: Set<LiveRange>, pairs: Map<LiveRange, LiveRange>, launch: (r: LiveRange) => void): void {
    // Nothing measured yet (no rate or no round trip): what a split would cut is unknown, wait.
    const rttMs = this.link.stalls.rtt;
    if (rttMs === undefined) return;
    const steps = planTail(running, {
      free: this.freeConnections(),
      linkLimit: this.link.limit,
      now: this.tailRates.now(),
      rttMs,
      perConnection: this.tailRates.perConnection(running.size),
      paired: (r) => pairs.has(r),
      lossBudget: this.tailLossBudget,
      lagShare: loopLag.share(),
    });
    for (const step of steps) {
      this.tailLossBudget -= step.risk;
      if (step.kind === 'split') {
        this.tailSplits++;
        step.range.end = step.rest.start - 1;
        launch(step.rest);
      } else {
        this.tailCopies++;
        const copy = liveRange({ start: step.from, end: step.range.end });
        pairs.set(copy, step.range);
        pairs.set(step.range, copy);
        launch(copy);
      }
    }
  }

  /** Connections of the link nobody uses or waits for now. */
  private freeConnections(): number {
    return this.link.limit - this.link.activeConnections - this.link.waiting;
  }

  /**
   * A range cut for silence (a stall that may never end) is asked again from where it stopped;
   * with connections of the link free, the rest is spread over them (pieces of TAIL_MIN_PIECE_BYTES
   * at least) instead of asked whole on one: splitting it now drops nothing (what the cut request
   * had in flight is lost already), and the last range of a blob does not crawl on one connection
   * while the others idle (stalls-forever: the rest of a 32 MiB layer's last range, 380 KB, asked
   * whole at 512 KiB/s a connection, 1 s with the link idle beside it). Not a range that has a
   * copy running, or is one (the first copy to end wins).
   */
  private spreadStalled(r: LiveRange, pairs: Map<LiveRange, LiveRange>, launch: (r: LiveRange) => void): void {
    if (pairs.has(r)) return;
    const free = this.freeConnections();
    const from = Math.max(r.pos, r.claimed);
    const left = r.end + 1 - from;
    const parts = Math.min(free + 1, Math.floor(left / TAIL_MIN_PIECE_BYTES));
    if (parts < 2) return;
    const piece = Math.ceil(left / parts);
    const end = r.end;
    r.end = from + piece - 1;
    for (let start = r.end + 1; start <= end; start += piece) {
      this.tailSplits++;
      launch(liveRange({ start, end: Math.min(end, start + piece - 1) }));
    }
  }

  /**
   * The size of the requests a fetch starts with: the blob spread over the connections it may use
   * (transfer.maxConnections), at most a chunk, so its requests end together on all of them however
   * busy the link is when it starts: a blob that waits its turn behind others (a prefetch, which
   * the link serves oldest first) gets connections one by one as theirs end, and requests a quarter
   * of what it is, planned for the one connection free then, would leave its last bytes on a few
   * of them for seconds while the rest of the link idles (small-docker: the last 4 MiB layer
   * asked as 4 requests of 1 MiB at 256 KiB/s a connection). At most a quarter of a chunk (1 MiB
   * at least), so the connections the link's limit gains as it learns find requests waiting
   * instead of splitting running ones (a split cuts one, losing what it had in flight). What is
   * missing of a blob already partly held (a resume, a piece fetched again) is asked chunk by chunk.
   */
  private requestBytes(): number {
    if (this.written.size > 0) return this.chunkSize;
    const even = Math.ceil(this.size / this.cfg.maxConnections / TAIL_MIN_PIECE_BYTES) * TAIL_MIN_PIECE_BYTES;
    return Math.min(this.chunkSize, Math.max(TAIL_MIN_PIECE_BYTES, Math.min(even, Math.max(this.chunkSize / 4, 1024 * 1024))));
  }

  private fetchContext(): FetchContext {
    return {
      source: this.opts.source,
      size: this.size,
      stallMs: this.cfg.stallSeconds * 1000,
      policy: { ...RETRY_POLICIES.transfer, ...this.opts.retryPolicy, attempts: this.cfg.retries },
      random: this.opts.random ?? Math.random,
      checkpointBytes: this.opts.checkpointBytes ?? 16 * 1024,
      write: (pos, buf) => this.fetched(buf.length, async () => {
        // Bytes already checked (or hashed) never change: a stream from an offset skips them.
        for (const g of this.held.gaps(pos, pos + buf.length)) {
          const bytes = buf.subarray(g.start - pos, g.end - pos);
          await this.partial.write(g.start, bytes).catch((e: unknown) => {
            throw this.localIo(e);
          });
          this.written.add(g.start, g.end);
          this.wrote(g.start, bytes);
        }
        if (this.written.coveredEnd(0) >= this.size) this.allWrittenHere?.();
      }),
      checkpoint: (start, end) => {
        if (end > start) this.partial.record({ start, end: end - 1 }).catch((e: unknown) => this.ctrl.abort(this.localIo(e)));
      },
      attemptStarted: () => {
        this.active++;
      },
      attemptEnded: (err) => {
        this.active--;
        if (err === undefined) return;
        this.retries++;
        if (err instanceof StallError) this.stallCuts++;
        if (isOverload(err)) this.share?.overloaded();
      },
      watch: this.link.stalls,
      sizeDisagrees: () => ++this.sizeDisagreements >= 3,
    };
  }

  /** Books `bytes` that crossed the link once `store` put them where they go. */
  private async fetched(bytes: number, store: () => Promise<void>): Promise<void> {
    await store();
    this.firstByteHere?.();
    this.bytesFetched += bytes;
    this.meter.add(bytes);
    this.tailRates.add(bytes);
    this.share?.record(bytes);
  }

  /** Bytes held from `pos` on: readers past the hashed prefix may have them now (releasedEnd). */
  private heldAhead(pos: number): void {
    if (pos > this.hasher.hashed && !this.withheld) this.emit('advance', this.releasedBytes);
  }

  /** Bytes now in the part: to the prefix hash at once, or to the piece checks. */
  private wrote(pos: number, buf: Uint8Array): void {
    if (this.pieceDigests === null) {
      this.held.add(pos, pos + buf.length);
      this.heldAhead(pos);
      this.hasher.wrote(pos, buf);
      return;
    }
    // undefined: the digests are not here yet; the pieces are checked once they are.
    if (this.pieceDigests === undefined) return;
    const last = Math.floor((pos + buf.length - 1) / this.pieceSize);
    for (let i = Math.floor(pos / this.pieceSize); i <= last; i++) this.checkIfComplete(i);
  }

  private async commit(hashed: string): Promise<TransferResult> {
    this.committing = true;
    await this.partial.commit(hashed).catch((e: unknown) => {
      throw this.localIo(e);
    });
    await this.opts.afterCommit?.();
    // The last byte goes out only once the blob is in the store: a client (or a pre-warm) that
    // has the whole blob can count on the mirror holding it.
    this.digestMatched = true;
    this.emit('advance', this.size);
    this.state = 'verified';
    await this.closePartial(false);
    this.emit('verified');
    return {
      digest: this.digest,
      size: this.size,
      bytesFetched: this.bytesFetched,
      resumedBytes: this.resumedBytes,
      retries: this.retries,
      durationMs: Math.round(performance.now() - this.startedAt),
    };
  }

  /** Closes the partial blob: kept for a later resume, or discarded (wrong content). */
  private async closePartial(discard: boolean): Promise<void> {
    await this.hasher.idle().catch(() => {});
    this.damageWatch?.stop();
    this.damageWatch = undefined;
    const part = this.part;
    this.part = undefined;
    await (discard ? part?.discard() : part?.close())?.catch(() => {});
  }

  /** A failure of our own storage, typed so it is never retried and names the errno and the path. */
  private localIo(e: unknown): unknown {
    const errno = e as NodeJS.ErrnoException;
    if (e instanceof LocalIoError || typeof errno?.code !== 'string' || !errno.code.startsWith('E')) return e;
    return new LocalIoError(errno, errno.path ?? `the partial blob of ${this.digest}`);
  }
}

/** Starts a transfer at once; await `transfer.done` for the result. */
export function startTransfer(opts: TransferOptions): Transfer {
  return new Transfer(opts);
}

