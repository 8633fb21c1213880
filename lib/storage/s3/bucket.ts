/**
 * One bucket (under one key prefix) as the S3 backend sees it: small typed operations over the
 * SDK with S3's errors mapped once, here. "Not there" is undefined, a lost conditional write is
 * false, anything else is a RegistryError STORAGE_UNAVAILABLE (503) naming the operation and the
 * key (never a credential). Keys given to and returned by this class are relative to the prefix.
 */
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { RegistryError } from '../../oci/errors.ts';
import type { ByteRange } from '../../oci/range.ts';

export interface ObjectInfo {
  /** Relative to the bucket's prefix. */
  key: string;
  size: number;
  /** Unquoted (RGW compares If-Match against the unquoted form only). */
  etag: string;
  /** ms since the epoch (from HEAD in whole seconds: Last-Modified has no more). */
  lastModified: number;
  /** User metadata (x-amz-meta-*), from HEAD only (a listing carries none). */
  metadata?: Record<string, string>;
}

export interface GetResult {
  body: Readable;
  /** The whole object's size. */
  size: number;
  etag: string;
  /** User metadata (x-amz-meta-*): a GET carries it as a HEAD does. */
  metadata: Record<string, string>;
  /** ms since the epoch, whole seconds. */
  lastModified: number;
}

export interface MultipartUpload {
  key: string;
  uploadId: string;
  initiated: number;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

/** A body the SDK can send with a known length (a stream must say how long it is). */
export type Body = Buffer | string | { stream: Readable; length: number };

/** S3's limit: every part of a multipart upload but the last is at least this long. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** S3's limit on one part, and on one CopyObject. */
export const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
const DELETE_BATCH = 1000;

export class S3Bucket {
  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    readonly prefix = '',
  ) {}

  /** A view of the same bucket under prefix + sub (e.g. one per test). */
  under(sub: string): S3Bucket {
    return new S3Bucket(this.client, this.bucket, this.prefix + sub);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return { key, size: r.ContentLength ?? 0, etag: unquote(r.ETag), lastModified: r.LastModified?.getTime() ?? 0, metadata: r.Metadata ?? {} };
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw this.failure('HEAD', key, e);
    }
  }

  /** The object's bytes (range: inclusive), streamed as they arrive; undefined when absent. */
  async get(key: string, range?: ByteRange, signal?: AbortSignal): Promise<GetResult | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({
        Bucket: this.bucket,
        Key: this.prefix + key,
        ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
      }), signal ? { abortSignal: signal } : {});
      const body = r.Body as Readable;
      const total = range ? Number(/\/(\d+)$/.exec(r.ContentRange ?? '')?.[1] ?? NaN) : (r.ContentLength ?? 0);
      return { body, size: total, etag: unquote(r.ETag), metadata: r.Metadata ?? {}, lastModified: r.LastModified?.getTime() ?? 0 };
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw this.failure('GET', key, e);
    }
  }

  /** A small object (or a range of one) whole, in memory; undefined when absent. */
  async getBytes(key: string, range?: ByteRange): Promise<Buffer | undefined> {
    return (await this.getVersion(key, range))?.bytes;
  }

  /** A small object whole with its etag (for a compare-and-swap put) and metadata; undefined when absent. */
  async getVersion(key: string, range?: ByteRange): Promise<{ bytes: Buffer; etag: string; metadata: Record<string, string>; lastModified: number } | undefined> {
    const r = await this.get(key, range);
    if (!r) return undefined;
    const chunks: Buffer[] = [];
    try {
      for await (const c of r.body) chunks.push(c as Buffer);
    } catch (e) {
      throw this.failure('GET', key, e);
    }
    return { bytes: Buffer.concat(chunks), etag: r.etag, metadata: r.metadata, lastModified: r.lastModified };
  }

  async getText(key: string): Promise<string | undefined> {
    return (await this.getBytes(key))?.toString('utf8');
  }

  /**
   * Writes the object. ifNoneMatch: only when no such key exists (atomic on RGW, unversioned
   * bucket); ifMatch: only over that etag (compare-and-swap). Returns the new etag, or undefined
   * when the condition failed.
   */
  async put(key: string, body: Body, opts: { ifNoneMatch?: boolean; ifMatch?: string; metadata?: Record<string, string> } = {}): Promise<string | undefined> {
    try {
      const r = await this.client.send(new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.prefix + key,
        ...bodyParams(body),
        ...(opts.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        ...(opts.ifMatch !== undefined ? { IfMatch: opts.ifMatch } : {}),
        ...(opts.metadata ? { Metadata: opts.metadata } : {}),
      }));
      return unquote(r.ETag);
    } catch (e) {
      if (isPreconditionFailed(e)) return undefined;
      if (typeof body === 'object' && 'stream' in body) body.stream.destroy();
      throw this.failure('PUT', key, e);
    }
  }

  /** Writes the object only if the key is free; false when it was taken. */
  async putIfAbsent(key: string, body: Body): Promise<boolean> {
    return (await this.put(key, body, { ifNoneMatch: true })) !== undefined;
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (e) {
      if (isMissing(e)) return;
      throw this.failure('DELETE', key, e);
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      try {
        const r = await this.client.send(new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((k) => ({ Key: this.prefix + k })), Quiet: true },
        }));
        const failed = (r.Errors ?? []).filter((x) => x.Code !== 'NoSuchKey');
        if (failed.length > 0) throw new Error(`${failed.length} not deleted, first ${failed[0]?.Key}: ${failed[0]?.Code}`);
      } catch (e) {
        throw this.failure('DELETE', batch[0] ?? '', e);
      }
    }
  }

  /** Server-side copy (up to MAX_PART_BYTES). */
  async copy(from: string, to: string): Promise<void> {
    try {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.prefix + to, CopySource: this.copySource(from) }));
    } catch (e) {
      throw this.failure('COPY', `${from} -> ${to}`, e);
    }
  }

  /** Every object under prefix (relative), in key order, from after startAfter. */
  async *list(prefix: string, opts: { startAfter?: string } = {}): AsyncGenerator<ObjectInfo> {
    for await (const page of this.listPages(prefix, opts)) {
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { key: o.Key.slice(this.prefix.length), size: o.Size ?? 0, etag: unquote(o.ETag), lastModified: o.LastModified?.getTime() ?? 0 };
      }
    }
  }

  /** The "folders" directly under prefix (relative, each ending in delimiter), in key order. */
  async *listPrefixes(prefix: string, delimiter = '/'): AsyncGenerator<string> {
    for await (const page of this.listPages(prefix, { delimiter })) {
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix !== undefined) yield p.Prefix.slice(this.prefix.length);
    }
  }

  private async *listPages(prefix: string, opts: { startAfter?: string; delimiter?: string }): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          ...(opts.delimiter !== undefined ? { Delimiter: opts.delimiter } : {}),
          ...(token ? { ContinuationToken: token } : opts.startAfter !== undefined ? { StartAfter: this.prefix + opts.startAfter } : {}),
        }));
      } catch (e) {
        throw this.failure('LIST', prefix, e);
      }
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  // --- multipart ---------------------------------------------------------------------------
  // An object assembled from parts appears only at complete: the way to write one that must not
  // be seen before it is whole (and verified).

  async createMultipart(key: string): Promise<string> {
    try {
      const r = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      if (!r.UploadId) throw new Error('no UploadId in the answer');
      return r.UploadId;
    } catch (e) {
      throw this.failure('CREATE MULTIPART', key, e);
    }
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Body): Promise<CompletedPart> {
    try {
      const r = await this.client.send(new UploadPartCommand({
        Bucket: this.bucket, Key: this.prefix + key, UploadId: uploadId, PartNumber: partNumber, ...bodyParams(body),
      }));
      return { partNumber, etag: requireEtag(r.ETag) };
    } catch (e) {
      if (typeof body === 'object' && 'stream' in body) body.stream.destroy();
      throw this.failure('UPLOAD PART', key, e);
    }
  }

  /** A part copied server-side from a range (inclusive) of another object. */
  async uploadPartCopy(key: string, uploadId: string, partNumber: number, source: string, range?: ByteRange): Promise<CompletedPart> {
    try {
      const r = await this.client.send(new UploadPartCopyCommand({
        Bucket: this.bucket, Key: this.prefix + key, UploadId: uploadId, PartNumber: partNumber,
        CopySource: this.copySource(source),
        ...(range ? { CopySourceRange: `bytes=${range.start}-${range.end}` } : {}),
      }));
      return { partNumber, etag: requireEtag(r.CopyPartResult?.ETag) };
    } catch (e) {
      throw this.failure('UPLOAD PART COPY', `${source} -> ${key}`, e);
    }
  }

  /** Makes the object whole and visible; returns its etag. */
  async completeMultipart(key: string, uploadId: string, parts: readonly CompletedPart[]): Promise<string> {
    try {
      const r = await this.client.send(new CompleteMultipartUploadCommand({
        Bucket: this.bucket, Key: this.prefix + key, UploadId: uploadId,
        MultipartUpload: { Parts: [...parts].sort((a, b) => a.partNumber - b.partNumber).map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
      }));
      return unquote(r.ETag);
    } catch (e) {
      throw this.failure('COMPLETE MULTIPART', key, e);
    }
  }

  /** Drops the upload and its parts; best effort (an upload already gone is fine). */
  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.prefix + key, UploadId: uploadId }));
    } catch (e) {
      if (isMissing(e) || nameOf(e) === 'NoSuchUpload') return;
      throw this.failure('ABORT MULTIPART', key, e);
    }
  }

  /** Multipart uploads in progress under prefix (relative keys). */
  async *listMultipart(prefix: string): AsyncGenerator<MultipartUpload> {
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      let r;
      try {
        r = await this.client.send(new ListMultipartUploadsCommand({
          Bucket: this.bucket, Prefix: this.prefix + prefix,
          ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
          ...(idMarker !== undefined ? { UploadIdMarker: idMarker } : {}),
        }));
      } catch (e) {
        throw this.failure('LIST MULTIPART', prefix, e);
      }
      for (const u of r.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined) continue;
        yield { key: u.Key.slice(this.prefix.length), uploadId: u.UploadId, initiated: u.Initiated?.getTime() ?? 0 };
      }
      if (!r.IsTruncated) return;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  }

  private copySource(key: string): string {
    return `${this.bucket}/${(this.prefix + key).split('/').map(encodeURIComponent).join('/')}`;
  }

  /** The one error a caller sees for a store that failed: 503, what and where, why. */
  failure(operation: string, key: string, e: unknown): RegistryError {
    if (e instanceof RegistryError) return e;
    return new RegistryError('STORAGE_UNAVAILABLE', `object store: ${operation} ${this.bucket}/${this.prefix}${key} failed: ${describeS3Error(e)}`, undefined, { cause: e });
  }
}

function bodyParams(body: Body): { Body: Buffer | string | Readable; ContentLength: number } {
  if (typeof body === 'string') return { Body: body, ContentLength: Buffer.byteLength(body) };
  if (Buffer.isBuffer(body)) return { Body: body, ContentLength: body.length };
  return { Body: body.stream, ContentLength: body.length };
}

/** RGW returns quoted etags but compares If-Match against the unquoted form. */
function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '');
}

function requireEtag(etag: string | undefined): string {
  if (!etag) throw new Error('no ETag in the answer');
  return etag;
}

function nameOf(e: unknown): string {
  return (e as { name?: string } | null)?.name ?? '';
}

function statusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function isMissing(e: unknown): boolean {
  const name = nameOf(e);
  return name === 'NoSuchKey' || name === 'NotFound' || (statusOf(e) === 404 && name !== 'NoSuchBucket');
}

function isPreconditionFailed(e: unknown): boolean {
  return statusOf(e) === 412 || nameOf(e) === 'PreconditionFailed';
}

/**
 * What went wrong, in words an operator can act on. RGW's error bodies carry no message (the
 * SDK's is "UnknownError"), so the name and the status say it.
 */
export function describeS3Error(e: unknown): string {
  const name = nameOf(e);
  const status = statusOf(e);
  if (name === 'NoSuchBucket') return 'no such bucket (create it, or fix storage.bucket)';
  if (name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'AccessDenied' || status === 403) {
    return `${name || 'refused'} (${status ?? '?'}): the store refused ferry's credentials for this bucket`;
  }
  const code = (e as { code?: string } | null)?.code;
  if (code) return `${code}${(e as Error).message && !(e as Error).message.includes(code) ? ` (${(e as Error).message})` : ''}`;
  if (name === 'TimeoutError' || name === 'RequestTimeout') return 'timed out (is the store full or down?)';
  if (status !== undefined) return `${name || 'error'} (HTTP ${status})`;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
