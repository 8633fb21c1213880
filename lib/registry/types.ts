/** What the HTTP layer needs from a registry: a pull side, and a push side where pushes are served. */
import type { Readable } from 'node:stream';
import type { BlobStream, ByteRange, UploadState } from '../storage/storage.ts';

export interface ManifestResult {
  /** The repository that actually served it (after rewrites). */
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  bytes: Buffer;
}

export interface BlobHandle {
  digest: string;
  size: number;
  /**
   * The bytes of range (the whole blob without one). Opened before it resolves: a blob gone since
   * the lookup rejects with BLOB_UNKNOWN here, before any response header. A stored blob's stream
   * may carry writeTo, the storage's fast way to send it (BlobStream).
   */
  open(range?: ByteRange): Promise<BlobStream>;
  /**
   * For a blob still arriving: resolves when its first byte is there (or after `timeoutMs`),
   * rejects when its transfer failed first, so a failure that comes at once (ENOSPC, refused) is
   * an error response rather than a cut connection.
   */
  ready?(timeoutMs: number): Promise<void>;
  /**
   * Only for a stored blob on a store set to redirect: a short-lived URL where the client may
   * fetch it itself (answered 307). Given only once the name was allowed to see the blob.
   */
  redirectUrl?(): Promise<string>;
}

export interface Page {
  n?: number;
  last?: string;
}

export interface PageResult<T> {
  items: T[];
  /** The last item, when there are more after it. */
  next?: string;
}

/** Where a request came from, for routing (containerd's ?ns=). */
export interface RequestContext {
  ns?: string;
  /**
   * A HEAD request: answer from what is held or arriving, never start an upstream fetch (docker
   * push HEADs every layer it is about to upload; that must not cross the slow link).
   */
  head?: boolean;
}

export interface ReferrersResult {
  manifests: Array<Record<string, unknown>>;
  filtered: boolean;
}

/**
 * The read side of a registry: what a pull needs. `catalog` and `referrers` are absent on a
 * backend that lists nothing (the relay); the v2 router then answers those routes UNSUPPORTED.
 */
export interface PullBackend {
  getManifest(name: string, reference: string, ctx?: RequestContext): Promise<ManifestResult>;
  getBlob(name: string, digest: string, ctx?: RequestContext): Promise<BlobHandle>;
  listTags(name: string, page: Page, ctx?: RequestContext): Promise<PageResult<string>>;
  catalog?(page: Page): Promise<PageResult<string>>;
  referrers?(name: string, digest: string, artifactType?: string): Promise<ReferrersResult>;
}

/** The write side: pushes, deletes, upload sessions. The v2 router mounts its routes only when given one. */
export interface PushBackend {
  putManifest(name: string, reference: string, bytes: Buffer, contentType?: string): Promise<{ digest: string; subject?: string }>;
  deleteManifest(name: string, reference: string): Promise<void>;
  deleteBlob(name: string, digest: string): Promise<void>;

  /** client: who asks (the user, else the address), for the open-session limit per client. */
  startUpload(name: string, client?: string): Promise<UploadState>;
  /** Mounts digest from another repository; undefined when it is not there (then start a session). */
  mountBlob(name: string, digest: string, from?: string): Promise<{ digest: string } | undefined>;
  uploadMonolithic(name: string, digest: string, body: Readable, length?: number): Promise<{ digest: string; size: number }>;
  uploadStatus(name: string, uuid: string): Promise<UploadState>;
  appendUpload(name: string, uuid: string, body: Readable, range?: ByteRange, length?: number): Promise<UploadState>;
  completeUpload(name: string, uuid: string, digest: string, body?: Readable, length?: number): Promise<{ digest: string; size: number }>;
  cancelUpload(name: string, uuid: string): Promise<void>;
}

/** A registry that serves both sides and lists (the local registry, the mirror). */
export type RegistryBackend = Required<PullBackend> & PushBackend;
