/**
 * What the pull-through layer needs from its neighbours, as narrow interfaces: the upstream
 * client and the downloader (the chunked transfer engine implements it).
 */
import type { Readable } from 'node:stream';
import type { RangeSource } from '../transfer/range-source.ts';

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

/** One blob download in progress. */
export interface Download {
  readonly digest: string;
  readonly size: number;
  /** Bytes start..end inclusive as they arrive; errors if the download fails (no bad bytes served whole). */
  createReader(start: number, end: number): Readable;
  /** Resolves with the path of the verified file (ready to be renamed into the store). */
  readonly done: Promise<string>;
  abort(reason?: Error): void;
}

export interface DownloadRequest {
  digest: string;
  size: number;
  source: RangeSource;
  /** Directory for the .part and .journal files. */
  dir: string;
  /** For logs and progress. */
  label: string;
}

export type Downloader = (req: DownloadRequest) => Download;
