/**
 * The content-addressed blob store. A blob enters blobs/ only by rename after its digest matched,
 * so a reader never sees a partial or corrupt blob. Two writers of one digest are harmless: both
 * renames put the same bytes in place.
 */
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../oci/errors.ts';
import { digestOf, newHash, requireDigest } from '../oci/digest.ts';
import { commitFile, isNotFound, tempPath } from './atomic.ts';
import type { StorePaths } from './paths.ts';

export interface BlobStat {
  digest: string;
  size: number;
  path: string;
  mtimeMs: number;
}

export interface IngestExpectation {
  digest?: string;
  size?: number;
}

const READ_HIGH_WATER = 1024 * 1024;

export class BlobStore {
  constructor(private readonly paths: StorePaths) {}

  async init(): Promise<void> {
    await mkdir(this.paths.blobsDir, { recursive: true });
    await mkdir(this.paths.tmpDir, { recursive: true });
  }

  async stat(digest: string): Promise<BlobStat | undefined> {
    const path = this.paths.blob(digest);
    try {
      const s = await stat(path);
      return { digest, size: s.size, path, mtimeMs: s.mtimeMs };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async has(digest: string): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  /** A stream of the blob's bytes, start..end inclusive. */
  open(digest: string, start?: number, end?: number): ReadStream {
    return createReadStream(this.paths.blob(digest), { start, end, highWaterMark: READ_HIGH_WATER });
  }

  async readBytes(digest: string): Promise<Buffer> {
    const fh = await open(this.paths.blob(digest), 'r');
    try {
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  /**
   * Streams source into a temp file while hashing, then commits it if the digest and size match.
   * Without an expected digest, the computed one names the blob.
   */
  async ingest(source: Readable | AsyncIterable<Buffer>, expect: IngestExpectation = {}): Promise<{ digest: string; size: number }> {
    const algorithm = expect.digest ? requireDigest(expect.digest).algorithm : 'sha256';
    const hash = newHash(algorithm);
    let size = 0;
    const tmp = tempPath(this.paths.tmpDir);
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        if (expect.size !== undefined && size > expect.size) {
          cb(new RegistryError('SIZE_INVALID', `content is longer than the expected ${expect.size} bytes`));
          return;
        }
        cb(null, chunk);
      },
    });
    const out = createWriteStream(tmp, { flags: 'wx' });
    try {
      await pipeline(source, counter, out);
      const digest = `${algorithm}:${hash.digest('hex')}`;
      if (expect.size !== undefined && size !== expect.size) {
        throw new RegistryError('SIZE_INVALID', `content length ${size} does not match the expected ${expect.size}`);
      }
      if (expect.digest !== undefined && digest !== expect.digest) {
        throw new RegistryError('DIGEST_INVALID', `content digest ${digest} does not match ${expect.digest}`, { expected: expect.digest, actual: digest });
      }
      await this.commitFile(tmp, digest);
      return { digest, size };
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }

  async putBytes(bytes: Buffer, expectDigest?: string): Promise<string> {
    const digest = digestOf(bytes, expectDigest ? requireDigest(expectDigest).algorithm : 'sha256');
    if (expectDigest !== undefined && digest !== expectDigest) {
      throw new RegistryError('DIGEST_INVALID', `content digest ${digest} does not match ${expectDigest}`, { expected: expectDigest, actual: digest });
    }
    if (await this.has(digest)) return digest;
    const tmp = tempPath(this.paths.tmpDir);
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.commitFile(tmp, digest);
    return digest;
  }

  /**
   * Moves a file whose content the caller has verified against digest into the store. The file
   * must be fsync'd and live on the same filesystem. Safe when the blob already exists.
   */
  async commitFile(verifiedPath: string, digest: string): Promise<void> {
    const fh = await open(verifiedPath, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await commitFile(verifiedPath, this.paths.blob(digest));
  }

  async delete(digest: string): Promise<boolean> {
    try {
      await unlink(this.paths.blob(digest));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** Marks a blob as used now (its mtime), for the cache's LRU order across restarts. */
  async touch(digest: string): Promise<void> {
    const now = new Date();
    await utimes(this.paths.blob(digest), now, now).catch(() => {});
  }

  /** Every blob in the store. */
  async *list(): AsyncGenerator<BlobStat> {
    for (const algorithm of await readdirOr(this.paths.blobsDir)) {
      for (const prefix of await readdirOr(join(this.paths.blobsDir, algorithm))) {
        for (const hex of await readdirOr(join(this.paths.blobsDir, algorithm, prefix))) {
          const s = await this.stat(`${algorithm}:${hex}`).catch(() => undefined);
          if (s) yield s;
        }
      }
    }
  }

  /** Removes temp files left by a crash (older than maxAgeMs, so live writers are untouched). */
  async cleanTemp(maxAgeMs: number): Promise<number> {
    let removed = 0;
    const now = Date.now();
    for (const name of await readdirOr(this.paths.tmpDir)) {
      const p = join(this.paths.tmpDir, name);
      const s = await stat(p).catch(() => undefined);
      if (s && now - s.mtimeMs > maxAgeMs) {
        await rm(p, { force: true, recursive: true });
        removed++;
      }
    }
    return removed;
  }
}

export async function readdirOr(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}
