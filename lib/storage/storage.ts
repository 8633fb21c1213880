/**
 * The storage seam: what everything outside lib/storage/ uses to keep blobs, repositories and
 * upload sessions (and, through `partials`, pull-through transfers in progress). No file path,
 * file descriptor or directory crosses these interfaces, and every method is async, so a backend
 * may keep its bytes in files (lib/storage/fs/), in memory (lib/storage/memory/, for tests) or in
 * objects by key (S3: single puts, multipart uploads, conditional writes).
 *
 * Names, tags and digests are validated by the caller (lib/oci/) before they reach a backend; a
 * backend may still refuse an invalid one with an Error. Ranges are inclusive ({ start, end } as
 * an HTTP Range gives them).
 *
 * The suite every backend must pass is test/storage/suite.ts.
 */
import type { Readable, Writable } from 'node:stream';
import type { ByteRange } from '../oci/range.ts';
import type { PartialBlobStorage } from './partial-blobs.ts';

export type { ByteRange } from '../oci/range.ts';

// --- blobs -------------------------------------------------------------------------------------

export interface BlobInfo {
  digest: string;
  size: number;
  /**
   * When the blob was written or last touched (ms since the epoch, to the backend's clock
   * resolution: S3 has whole seconds): the cache's LRU order, gc's grace.
   */
  touchedAt: number;
}

/** What ingest checks the content against; without a digest the computed sha256 names the blob. */
export interface IngestExpectation {
  digest?: string;
  size?: number;
}

export interface StoredBlob {
  digest: string;
  size: number;
}

/**
 * A blob's bytes as a stream. A backend may add `writeTo`, a faster way to write them into a sink
 * (the fs backend sends from pooled slabs by positional reads); whoever consumes the stream uses
 * either the stream or writeTo, never both.
 */
export interface BlobStream extends Readable {
  /**
   * Writes every byte of the stream into sink, then ends it; releases the source. Resolves early,
   * without ending the sink, when the sink closes first; rejects on a read error (the sink was
   * promised a length: the caller destroys it).
   */
  writeTo?(sink: Writable): Promise<void>;
}

/**
 * Content-addressed, immutable blobs (manifests too). A blob is visible (stat, has, read, list)
 * only once its content matched its digest; there is no way to observe one half-written.
 */
export interface BlobStorage {
  /** undefined when the blob is not held. */
  stat(digest: string): Promise<BlobInfo | undefined>;
  /**
   * The blob's size, undefined when it is not held: what serving needs, without the touchedAt only
   * eviction and gc ask for (S3: one HEAD of the blob, stat's second of its touch record spared).
   */
  size(digest: string): Promise<number | undefined>;
  has(digest: string): Promise<boolean>;

  /**
   * The bytes of range (the whole blob without one), or undefined when the blob is not held. The
   * blob is opened before this resolves: a blob deleted afterwards still reads whole where the
   * backend can promise it (fs: an open file outlives its unlink). A range past the end is the
   * caller's error (HTTP has checked it against stat).
   */
  read(digest: string, range?: ByteRange): Promise<BlobStream | undefined>;

  /** The whole blob in memory (manifests, configs: small). Rejects with BLOB_UNKNOWN when not held. */
  readBytes(digest: string): Promise<Buffer>;

  /**
   * Stores source's bytes while hashing them; the blob becomes visible only when the digest (and
   * size) matched, atomically. A mismatch rejects with DIGEST_INVALID (SIZE_INVALID for the size,
   * as soon as the source runs past it) and leaves nothing behind; so does a source that fails.
   * Idempotent: ingesting a digest already held succeeds and keeps one blob; concurrent ingests of
   * one digest all succeed with one blob.
   */
  ingest(source: Readable | AsyncIterable<Buffer>, expect?: IngestExpectation): Promise<StoredBlob>;

  /** ingest for bytes already in memory; returns the digest. Same promises. */
  putBytes(bytes: Buffer, expectDigest?: string): Promise<string>;

  /** Removes the blob; false when it was not held. Readers that already opened it may finish. */
  delete(digest: string): Promise<boolean>;

  /**
   * Only on a store set to redirect (S3 with storage.redirect): a short-lived URL from which a
   * client may fetch the blob itself. It names the object, held or not: the caller checks first.
   */
  redirectUrl?(digest: string): Promise<string>;

  /**
   * Marks the blob as used now (touchedAt), each call (how often is the caller's: TouchThrottle).
   * Best effort, for a blob the caller has just found held (it served it): a backend need not look
   * again. S3 does not (one PUT): a touch that races the blob's delete may leave its empty touch
   * record behind, which stat and list ignore (they start from the blob) and the digest's next
   * delete, or the sweep once it is older than the sweep's maxAgeMs, removes. The fs and memory stores do nothing for a blob not held.
   */
  touch(digest: string): Promise<void>;

  /** Every blob held, in no particular order; blobs added or removed meanwhile may or may not appear. */
  list(): AsyncIterable<BlobInfo>;

  /**
   * Removes what ingests abandoned more than maxAgeMs ago (temp files, multipart uploads) whose
   * writer is gone, and touch records as old whose blob is gone (S3); a live ingest younger than
   * that is untouched. Returns how many were removed.
   */
  sweep(maxAgeMs: number): Promise<number>;

  /**
   * Small derived records kept beside a blob under a key of [a-z0-9.-] (the relay's chunk
   * lists): read (undefined when absent), write (atomic: a reader sees the old or the new text),
   * and drop every one of a blob. They are not removed with the blob by delete.
   */
  readSidecar(digest: string, key: string): Promise<string | undefined>;
  writeSidecar(digest: string, key: string, text: string): Promise<void>;
  deleteSidecars(digest: string): Promise<void>;
}

/** A sidecar key as the contract allows it ([a-z0-9.-], not starting with . or -); throws otherwise. */
export function requireSidecarKey(key: string): string {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(key)) throw new Error(`invalid sidecar key ${key}`);
  return key;
}

// --- repositories ------------------------------------------------------------------------------

export interface ManifestMeta {
  mediaType: string;
  size: number;
  artifactType?: string;
  /** Digest of the subject manifest, when this manifest is a referrer. */
  subject?: string;
  annotations?: Record<string, string>;
}

/** A tag as one read of it gives it (readTag). */
export interface TagRecord {
  digest: string;
  /** When the tag was last set or confirmed by markTagChecked (ms since the epoch). */
  checkedAt: number;
  /** Which write of the record this is (S3: its etag), for markTagChecked's compare; opaque. */
  version?: string;
}

/** "local": pushed or imported, pinned; "cache": pull-through, evictable. */
export type Origin = 'local' | 'cache';

/**
 * Which manifests and blobs each repository holds, its tags, referrers and origin. Metadata only:
 * the bytes are in BlobStorage. Every write is atomic per record (a reader sees the old value or
 * the new one) and idempotent; records of one repository are independent (no multi-record
 * transaction is promised: linkManifest writes the manifest link, then its referrer record).
 */
export interface RepositoryStorage {
  getManifestMeta(name: string, digest: string): Promise<ManifestMeta | undefined>;
  /** Links the manifest into the repository; with meta.subject also records it as a referrer of that subject. */
  linkManifest(name: string, digest: string, meta: ManifestMeta): Promise<void>;
  /** Removes the manifest link, every tag pointing at it and its referrer record; false when not linked. */
  unlinkManifest(name: string, digest: string): Promise<boolean>;
  listManifests(name: string): Promise<string[]>;

  /** The digest the tag points at, undefined when no such tag. */
  getTag(name: string, tag: string): Promise<string | undefined>;
  setTag(name: string, tag: string, digest: string): Promise<void>;
  /** The tag with when it was checked, in one read (revalidation); undefined when no such tag. */
  readTag(name: string, tag: string): Promise<TagRecord | undefined>;
  /**
   * Records that the upstream confirmed the tag now, as `seen` (readTag's) read it, without reading
   * it again; nothing when the tag is gone or was set again since (it is no longer what was confirmed).
   */
  markTagChecked(name: string, tag: string, seen: TagRecord): Promise<void>;
  deleteTag(name: string, tag: string): Promise<boolean>;
  /** Tags in lexical (code unit) order, the order the spec's pagination needs. */
  listTags(name: string): Promise<string[]>;

  /** Whether the repository may serve the blob (a layer or config link). */
  hasBlob(name: string, digest: string): Promise<boolean>;
  linkBlob(name: string, digest: string): Promise<void>;
  unlinkBlob(name: string, digest: string): Promise<boolean>;
  listBlobs(name: string): Promise<string[]>;

  /** Descriptors of the manifests whose subject is subject, ordered by referrer digest. */
  listReferrers(name: string, subject: string): Promise<Array<Record<string, unknown>>>;

  getOrigin(name: string): Promise<Origin | undefined>;
  /** Sets the origin; "local" wins for good once set (pushed content stays pinned). */
  setOrigin(name: string, origin: Origin): Promise<void>;

  /** Whether the repository holds a manifest, a tag or a blob link. */
  exists(name: string): Promise<boolean>;
  /** Repositories holding a manifest or a tag (the catalog), in lexical order. */
  listRepositories(): Promise<string[]>;
  /** Every repository holding any link, blob links alone included (gc), in lexical order. */
  listAllRepositories(): Promise<string[]>;
}

// --- upload sessions ---------------------------------------------------------------------------

export interface UploadState {
  uuid: string;
  name: string;
  startedAt: string;
  /** Bytes received so far. */
  offset: number;
}

/** How many sessions may be open at once; more is UPLOAD_SESSIONS_EXHAUSTED until some complete or expire. */
export interface UploadLimits {
  /** Per client (the user, else the address). */
  perClient: number;
  perRepository: number;
}

/**
 * Push sessions (OCI blob uploads). A session survives a restart of the process (where the
 * backend is durable); one request at a time per session (a second is UPLOAD_BUSY). Errors are
 * RegistryErrors: BLOB_UPLOAD_UNKNOWN for a session that does not exist or belongs to another
 * repository.
 */
export interface UploadStorage {
  /** Open sessions: all of them, or those of one repository or one client (S3: of every replica on the bucket). */
  count(of?: { name?: string; client?: string }): Promise<number>;
  /** A new empty session, unless the client or the repository already holds as many as the limits allow. */
  create(name: string, client?: string): Promise<UploadState>;
  get(name: string, uuid: string): Promise<UploadState>;
  /**
   * Appends source at the session's offset. With a range, its start must be the offset (else
   * RANGE_INVALID carrying the offset) and the bytes must fill it (else SIZE_INVALID, nothing
   * kept). Bytes of a source cut midway stay: the client resumes from the offset get reports.
   */
  append(name: string, uuid: string, source: Readable, range?: ByteRange, length?: number): Promise<UploadState>;
  /**
   * Verifies the whole upload against digest (DIGEST_INVALID, session kept, when it differs),
   * then makes it a blob (as BlobStorage.ingest: visible only verified), links it into the
   * repository and ends the session.
   */
  complete(name: string, uuid: string, digest: string): Promise<StoredBlob>;
  cancel(name: string, uuid: string): Promise<void>;
  /** Removes sessions idle for longer than maxIdleMs (never one a request is working on); returns how many. */
  sweep(maxIdleMs: number): Promise<number>;
}

// --- the whole -----------------------------------------------------------------------------------

export interface Storage {
  blobs: BlobStorage;
  /** Pull-through transfers in progress (engine's; see partial-blobs.ts). */
  partials: PartialBlobStorage;
  repositories: RepositoryStorage;
  uploads: UploadStorage;
}
