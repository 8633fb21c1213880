/**
 * The small shared objects the replicas of one cluster coordinate through (leases, transfer
 * progress, heartbeats), all under one key prefix of the cluster's bucket:
 *
 *   <prefix>leases/<name>           a lease (lease.ts)
 *   <prefix>progress/<digest>       which ranges of a transfer are in the bucket (progress.ts)
 *   <prefix>replicas/<id>           a replica's heartbeat (replicas.ts)
 *
 * Writes can be conditional, as RGW (Ceph Pacific) honours them on PutObject: `If-None-Match: *`
 * creates only when absent, `If-Match: <etag>` replaces only that version (compare-and-swap). RGW
 * compares the etag **unquoted** (the quoted form S3 returns never matches), so etags here are
 * always unquoted. A failed condition is `undefined`, not an error. There is no conditional delete
 * on RGW: whoever must give something up overwrites it conditionally instead.
 */
import type { S3Bucket } from '../storage/s3/bucket.ts';

export interface StoredObject {
  body: Buffer;
  /** Unquoted. */
  etag: string;
}

export interface ListedObject {
  /** The key below the cluster prefix. */
  key: string;
  etag: string;
  /** ms since the epoch, by RGW's clock. */
  lastModified: number;
}

/** Create only if absent, or replace only the version with this (unquoted) etag. */
export type PutCondition = { ifAbsent: true } | { ifMatch: string };

/**
 * The cluster's view of its bucket: whole small objects with their etags, over the S3 backend's
 * bucket (lib/storage/s3/bucket.ts, which maps S3's errors once: a store that fails is a
 * STORAGE_UNAVAILABLE RegistryError). Its requests are bounded by the client's request timeout.
 */
export class ClusterObjects {
  constructor(
    /** The bucket under the cluster's prefix, e.g. `bucket.under('cluster/')`. */
    readonly bucket: S3Bucket,
  ) {}

  /** The object at key, or undefined when there is none. */
  async get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    const found = await this.bucket.get(key, undefined, signal);
    if (!found) return undefined;
    const chunks: Buffer[] = [];
    try {
      for await (const c of found.body) chunks.push(c as Buffer);
    } catch (e) {
      throw this.bucket.failure('GET', key, e);
    }
    return { body: Buffer.concat(chunks), etag: found.etag };
  }

  /** Writes body at key; the new etag, or undefined when the condition did not hold. */
  put(key: string, body: string | Buffer, condition?: PutCondition): Promise<string | undefined> {
    return this.bucket.put(key, body, {
      ...(condition && 'ifAbsent' in condition ? { ifNoneMatch: true } : {}),
      ...(condition && 'ifMatch' in condition ? { ifMatch: condition.ifMatch } : {}),
    });
  }

  /** Every object whose key starts with prefix (below the cluster prefix), with its etag. */
  async list(prefix: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    for await (const o of this.bucket.list(prefix)) out.push({ key: o.key, etag: o.etag, lastModified: o.lastModified });
    return out;
  }

  /** Unconditional (RGW ignores If-Match on delete): only for objects nobody contends for. */
  delete(key: string): Promise<void> {
    return this.bucket.delete(key);
  }
}
