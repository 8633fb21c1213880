/**
 * Per-chunk digests of blobs the relay holds complete, so a mirror that found a blob corrupt
 * fetches again only the chunks that differ (lib/transfer/chunk-digests.ts). Computed once per
 * (blob, chunk size) and kept in a sidecar file beside the store:
 *
 *   <data>/relay/chunks/<algorithm>/<hex>.<chunkSize>.json    { "chunkSize": n, "digests": [...] }
 *
 * Chunks are hashed with the blob's own algorithm and cut as planChunks cuts them (the last is shorter).
 */
import { open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { newHash, requireDigest } from '../oci/digest.ts';
import { readIfExists, writeFileAtomic } from '../storage/atomic.ts';
import type { Store } from '../storage/store.ts';
import { planChunks } from '../transfer/chunk-plan.ts';
import type { ChunkDigests } from '../transfer/range-source.ts';

const READ = 1024 * 1024;

const KiB64 = 64 * 1024;

/** Chunk sizes a client may ask for: multiples of 64 KiB up to 1 GiB (each new size costs a pass over the blob). */
export function isValidChunkSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= KiB64 && n <= 1024 ** 3 && n % KiB64 === 0;
}

export class ChunkLists {
  private readonly computing = new Map<string, Promise<ChunkDigests>>();

  constructor(private readonly store: Store) {}

  get dir(): string {
    return join(this.store.root, 'relay', 'chunks');
  }

  private sidecar(digest: string, chunkSize: number): string {
    const d = requireDigest(digest);
    return join(this.dir, d.algorithm, `${d.hex}.${chunkSize}.json`);
  }

  /** The list for a blob in the store; undefined when the store does not hold it. One computation per key. */
  async get(digest: string, chunkSize: number): Promise<ChunkDigests | undefined> {
    if (!isValidChunkSize(chunkSize)) throw new RangeError(`invalid chunk size ${chunkSize}`);
    const path = this.sidecar(digest, chunkSize);
    const saved = await readIfExists(path);
    if (saved !== undefined) return JSON.parse(saved) as ChunkDigests;
    if (!(await this.store.blobs.has(digest))) return undefined;
    let pending = this.computing.get(path);
    if (!pending) {
      pending = this.compute(digest, chunkSize).then(async (list) => {
        await writeFileAtomic(this.store.paths.tmpDir, path, JSON.stringify(list));
        return list;
      });
      this.computing.set(path, pending);
      const forget = (): void => {
        this.computing.delete(path);
      };
      pending.then(forget, forget);
    }
    try {
      return await pending;
    } catch (e) {
      // Evicted while we read it: as if it had never been there.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Drops every list of a blob (it left the store). */
  async remove(digest: string): Promise<void> {
    const d = requireDigest(digest);
    const dir = join(this.dir, d.algorithm);
    const names = await readdir(dir).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => n.startsWith(`${d.hex}.`)).map((n) => rm(join(dir, n), { force: true })));
  }

  private async compute(digest: string, chunkSize: number): Promise<ChunkDigests> {
    const { algorithm } = requireDigest(digest);
    const fh = await open(this.store.paths.blob(digest), 'r');
    try {
      const size = (await fh.stat()).size;
      const buf = Buffer.allocUnsafe(Math.min(READ, chunkSize));
      const digests: string[] = [];
      for (const c of planChunks(size, chunkSize)) {
        const hash = newHash(algorithm);
        for (let pos = c.start, end = c.end + 1; pos < end;) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
          if (bytesRead === 0) throw new Error(`short read of ${digest} at ${pos}`);
          hash.update(buf.subarray(0, bytesRead));
          pos += bytesRead;
        }
        digests.push(`${algorithm}:${hash.digest('hex')}`);
      }
      return { chunkSize, digests };
    } finally {
      await fh.close();
    }
  }
}
