/**
 * The fs backend's BlobStorage. A blob enters blobs/ only by rename after its digest matched, so
 * a reader never sees a partial or corrupt blob. Two writers of one digest are harmless: both
 * renames put the same bytes in place. touchedAt is the file's mtime.
 */
import { createWriteStream, open as openFd } from 'node:fs';
import { mkdir, open, readdir, rm, stat, unlink, utimes } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../oci/errors.ts';
import { requireDigest } from '../oci/digest.ts';
import type { ByteRange } from '../oci/range.ts';
import { commitFile, fsyncPath, isNotFound, readIfExists, tempPath, writeFileAtomic } from './atomic.ts';
import { FileBlobStream } from './file-blob-stream.ts';
import type { StorePaths } from './paths.ts';
import type { BlobInfo, BlobStorage, BlobStream, IngestExpectation, StoredBlob } from './storage.ts';
import { ContentCheck, checkedDigestOf } from './content-check.ts';

export class FsBlobStorage implements BlobStorage {
  constructor(private readonly paths: StorePaths) {}

  async init(): Promise<void> {
    await mkdir(this.paths.blobsDir, { recursive: true });
    await mkdir(this.paths.tmpDir, { recursive: true });
  }

  async stat(digest: string): Promise<BlobInfo | undefined> {
    try {
      const s = await stat(this.paths.blob(digest));
      return { digest, size: s.size, touchedAt: s.mtimeMs };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async size(digest: string): Promise<number | undefined> {
    return (await this.stat(digest))?.size;
  }

  async has(digest: string): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  async read(digest: string, range?: ByteRange): Promise<BlobStream | undefined> {
    const path = this.paths.blob(digest);
    let fd: number;
    try {
      fd = await new Promise<number>((resolve, reject) => openFd(path, 'r', (err, n) => (err ? reject(err) : resolve(n))));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    if (range) return new FileBlobStream(fd, range.start, range.end);
    try {
      const { size } = await stat(path);
      return new FileBlobStream(fd, 0, size - 1);
    } catch (e) {
      // Deleted between open and stat: the open file still has its bytes, but not its size here.
      new FileBlobStream(fd, 0, -1).destroy();
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async readBytes(digest: string): Promise<Buffer> {
    let fh;
    try {
      fh = await open(this.paths.blob(digest), 'r');
    } catch (e) {
      if (isNotFound(e)) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { digest });
      throw e;
    }
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
  async ingest(source: Readable | AsyncIterable<Buffer>, expect: IngestExpectation = {}): Promise<StoredBlob> {
    const check = new ContentCheck(expect);
    const tmp = tempPath(this.paths.tmpDir);
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        try {
          check.update(chunk);
        } catch (err) {
          cb(err as Error);
          return;
        }
        cb(null, chunk);
      },
    });
    const out = createWriteStream(tmp, { flags: 'wx' });
    try {
      await pipeline(source, counter, out);
      const digest = check.verify();
      await this.commitFile(tmp, digest);
      return { digest, size: check.size };
    } catch (e) {
      // A source that fails at once may fail the pipeline before the file is even open: unlinked
      // then, the open that completes after would leave it. Removed once the stream let go of it.
      if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }

  async putBytes(bytes: Buffer, expectDigest?: string): Promise<string> {
    const digest = checkedDigestOf(bytes, expectDigest);
    if (await this.has(digest)) return digest;
    await writeFileAtomic(this.paths.tmpDir, this.paths.blob(digest), bytes);
    return digest;
  }

  /**
   * fs backend only (upload sessions, transfers): moves a file whose content the caller has
   * verified against digest into the store. The file must live on the same filesystem; it is
   * fsync'd here. Safe when the blob already exists.
   */
  async commitFile(verifiedPath: string, digest: string): Promise<void> {
    await fsyncPath(verifiedPath);
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

  async *list(): AsyncGenerator<BlobInfo> {
    for (const algorithm of await readdirOr(this.paths.blobsDir)) {
      for (const prefix of await readdirOr(this.paths.blobsOf(algorithm))) {
        for (const hex of await readdirOr(this.paths.blobsOf(algorithm, prefix))) {
          const s = await this.stat(`${algorithm}:${hex}`).catch(() => undefined);
          if (s) yield s;
        }
      }
    }
  }

  /** Removes temp files left by a crash (older than maxAgeMs, so live writers are untouched). */
  async sweep(maxAgeMs: number): Promise<number> {
    let removed = 0;
    const now = Date.now();
    for (const name of await readdirOr(this.paths.tmpDir)) {
      const p = this.paths.temp(name);
      const s = await stat(p).catch(() => undefined);
      if (s && now - s.mtimeMs > maxAgeMs) {
        await rm(p, { force: true, recursive: true });
        removed++;
      }
    }
    return removed;
  }

  async readSidecar(digest: string, key: string): Promise<string | undefined> {
    return readIfExists(this.paths.sidecar(digest, key));
  }

  async writeSidecar(digest: string, key: string, text: string): Promise<void> {
    await writeFileAtomic(this.paths.tmpDir, this.paths.sidecar(digest, key), text);
  }

  async deleteSidecars(digest: string): Promise<void> {
    const prefix = `${requireDigest(digest).hex}.`;
    const keys = (await readdirOr(this.paths.sidecarsDir(digest))).filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
    await Promise.all(keys.map((k) => rm(this.paths.sidecar(digest, k), { force: true })));
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
