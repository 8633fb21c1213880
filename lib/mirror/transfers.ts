/**
 * One upstream transfer per digest, per mirror instance, however many clients ask. The transfer
 * outlives the client that started it; it enters the store only once verified; a failed transfer
 * leaves nothing in the store and errors every reader.
 */
import type { Readable } from 'node:stream';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log/logger.ts';
import type { Storage } from '../storage/storage.ts';
import { RegistryError } from '../oci/errors.ts';
import { DigestMismatchError, SizeMismatchError } from '../transfer/errors.ts';
import { LinkBudgets, type LinkBudgetsOptions } from '../transfer/link-budgets.ts';
import type { RangeSource } from '../transfer/range-source.ts';
import { startTransfer, type TransferSnapshot } from '../transfer/transfer.ts';
import { TRANSFER_DEFAULTS, type TransferTuning } from '../transfer/tuning.ts';
import type { PartialBlobStorage } from '../storage/partial-blobs.ts';

/** One blob transfer in progress, as the table sees it (the engine's Transfer is one). */
export interface RunningTransfer {
  readonly digest: string;
  readonly size: number;
  /** Bytes start..end inclusive as they arrive; errors if the transfer fails (no bad bytes served whole). */
  createReader(start: number, end: number): Readable;
  /** Resolves once the verified blob was committed (and afterCommit ran). */
  readonly done: Promise<unknown>;
  /** Resolves when the first byte may be read (or the blob is in), rejects when the transfer failed first. */
  readonly firstByte?: Promise<void>;
  /** A client waits for the first byte: the transfer goes before those nobody reads until the returned function is called. */
  clientWaits?(): () => void;
  /** Stops; what is stored stays for a later resume. */
  abort(reason?: string): void;
  snapshot(): TransferSnapshot;
}

export interface TransferSpec {
  digest: string;
  size: number;
  source: RangeSource;
  /** Where the bytes go while they arrive; commits them into the blob store. */
  partials: PartialBlobStorage;
  /** For logs and progress. */
  label: string;
  /** The upstream's name: transfers to one upstream share its link's connections. */
  upstream?: string;
  /** The image whose blobs are fetched together (a prefetch): the link serves them oldest first (LinkShare.group). */
  group?: string;
  /** Called once the verified blob is in the blob store, before its last byte goes out (links it into the cache repository). */
  afterCommit(): Promise<void>;
}

/** Starts one transfer: the engine (engineTransferStarter), or a test's stand-in. */
export type TransferStarter = (spec: TransferSpec) => RunningTransfer;

/** The chunked transfer engine (lib/transfer), one link budget per upstream. */
export function engineTransferStarter(tuning: Partial<TransferTuning>, opts: LinkBudgetsOptions = {}): TransferStarter {
  const links = new LinkBudgets({ minConnections: tuning.minConnections ?? TRANSFER_DEFAULTS.minConnections, maxConnections: tuning.maxConnections ?? TRANSFER_DEFAULTS.maxConnections }, opts);
  return (spec) => startTransfer({
    digest: spec.digest,
    size: spec.size,
    source: spec.source,
    partials: spec.partials,
    config: tuning,
    link: links.get(spec.upstream),
    ...(spec.group !== undefined ? { linkGroup: spec.group } : {}),
    afterCommit: () => spec.afterCommit(),
  });
}

export interface TransferRequest extends Omit<TransferSpec, 'partials' | 'afterCommit' | 'upstream'> {
  /** Cache repository that holds the blob once it is in. */
  repository: string;
  /** The upstream's name (the link the transfer shares, the figures it counts in). */
  upstream: string;
}

export interface TransferHandle {
  digest: string;
  size: number;
  repository: string;
  upstream: string;
  startedAt: number;
  transfer: RunningTransfer;
  /** Resolves once the blob is in the store. */
  committed: Promise<void>;
}


export class Transfers extends EventEmitter {
  private readonly byDigest = new Map<string, TransferHandle>();
  /**
   * Digests whose upstream serves the same wrong bytes again and again (or another size than the
   * manifest says), with when the refusal ends: clients retry a failed blob at once (dockerd five
   * times), and each retry would cross the slow link for the same wrong bytes. A link that only
   * flips bytes now and then is repaired inside the transfer and never lands here.
   */
  private readonly badContent = new Map<string, { until: number; reason: string }>();

  constructor(
    private readonly store: Storage,
    private readonly transferStarter: TransferStarter,
    private readonly logger: Logger,
    /** How long a digest whose upstream content failed verification is refused without refetching. */
    private readonly badContentHoldMs = 60_000,
  ) {
    super();
  }

  get active(): TransferHandle[] {
    return [...this.byDigest.values()];
  }

  get(digest: string): TransferHandle | undefined {
    return this.byDigest.get(digest);
  }

  /** The transfer of this digest: the running one, or a new one. */
  ensure(req: TransferRequest): TransferHandle {
    const running = this.byDigest.get(req.digest);
    if (running) return running;
    this.refuseIfBad(req.digest);
    const log = this.logger.child({ digest: req.digest, repository: req.repository });
    const transfer = this.transferStarter({
      ...req,
      partials: this.store.partials,
      afterCommit: () => this.store.repositories.linkBlob(req.repository, req.digest),
    });
    const startedAt = Date.now();
    log.info({ bytes: req.size }, 'transfer started');
    const committed = transfer.done.then(
      () => {
        const durationMs = Date.now() - startedAt;
        const s = transfer.snapshot();
        // What the link cost and why: bytes that crossed it (linkBytes over bytes), silent requests cut,
        // the tail's splits and copies, pieces fetched again.
        log.info({
          bytes: req.size, linkBytes: s.bytesFetched, durationMs, resumedBytes: s.resumedBytes, retries: s.retries, stallCuts: s.stallCuts,
          tailSplits: s.tailSplits, tailCopies: s.tailCopies, chunksRefetched: s.chunksRefetched, mbps: round(req.size / 1e6 / Math.max(durationMs / 1000, 0.001)),
        }, 'transfer complete');
        this.emit('committed', { digest: req.digest, size: req.size, repository: req.repository });
      },
    ).catch((e: unknown) => {
      // What it cost the link all the same (a holder that lost its lease: its successor fetches the rest).
      log.warn({ err: e, linkBytes: transfer.snapshot().bytesFetched }, 'transfer failed');
      if ((e instanceof DigestMismatchError && e.sameBytes) || e instanceof SizeMismatchError) {
        this.badContent.set(req.digest, { until: Date.now() + this.badContentHoldMs, reason: e.message });
      }
      this.emit('failed', { digest: req.digest, repository: req.repository, error: e });
      throw e;
    }).finally(() => {
      this.byDigest.delete(req.digest);
    });
    // A transfer nobody awaits must not become an unhandled rejection.
    committed.catch(() => {});
    const handle: TransferHandle = { digest: req.digest, size: req.size, repository: req.repository, upstream: req.upstream, startedAt, transfer, committed };
    this.byDigest.set(req.digest, handle);
    this.emit('started', handle);
    return handle;
  }

  /** Throws UPSTREAM_ERROR (502) while the digest's upstream content is held as bad. */
  refuseIfBad(digest: string): void {
    const bad = this.badContent.get(digest);
    if (!bad) return;
    if (Date.now() >= bad.until) {
      this.badContent.delete(digest);
      return;
    }
    const seconds = Math.ceil((bad.until - Date.now()) / 1000);
    throw new RegistryError('UPSTREAM_ERROR', `the upstream keeps serving wrong content for ${digest} (${bad.reason}); not fetched again for ${seconds} s`, { digest });
  }

  /** A reader of start..end of the blob being transferred. */
  reader(transfer: TransferHandle, start: number, end: number): Readable {
    return transfer.transfer.createReader(start, end);
  }

  /** Stops every transfer; their parts and journals stay, so the next start resumes them. */
  abortAll(reason: string): void {
    for (const transfer of this.byDigest.values()) transfer.transfer.abort(reason);
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
