/**
 * What the pull-through layer needs from its neighbours, as narrow interfaces: the upstream
 * client and the transferStarter (the chunked transfer engine implements it).
 */
import type { Readable } from 'node:stream';
import type { RangeSource } from '../transfer/range-source.ts';
import type { TransferSnapshot } from '../transfer/transfer.ts';
import type { PartialBlobStorage } from '../storage/partial-blobs.ts';

export interface UpstreamManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

export interface UpstreamPort {
  getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<UpstreamManifest>;
  /** undefined when the upstream does not have it. */
  headManifest(repository: string, reference: string, signal?: AbortSignal): Promise<{ digest: string; mediaType: string; size: number } | undefined>;
  headBlob(repository: string, digest: string, signal?: AbortSignal): Promise<{ size: number }>;
  rangeSource(repository: string, digest: string): RangeSource;
  listTags(repository: string, signal?: AbortSignal): Promise<string[]>;
}

/** One blob transfer in progress. */
export interface RunningTransfer {
  readonly digest: string;
  readonly size: number;
  /** Bytes start..end inclusive as they arrive; errors if the transfer fails (no bad bytes served whole). */
  createReader(start: number, end: number): Readable;
  /** Resolves once the verified blob was committed (TransferSpec.commit ran). */
  readonly done: Promise<void>;
  /** Resolves when the first byte may be read (or the blob is in), rejects when the transfer failed first. */
  readonly firstByte?: Promise<void>;
  /** Stops; what is on disk stays for a later resume. */
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
  /** Called once the verified blob is in the blob store, before its last byte goes out (links it into the cache repository). */
  afterCommit(): Promise<void>;
}

export type TransferStarter = (req: TransferSpec) => RunningTransfer;
