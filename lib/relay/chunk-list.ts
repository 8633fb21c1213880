/**
 * Per-chunk digests of blobs the relay holds complete, so a mirror that found a blob corrupt
 * fetches again only the chunks that differ (lib/transfer/chunk-digests.ts). Computed once per
 * (blob, chunk size) and kept as a sidecar record of the blob, key `chunks-<chunkSize>.json`:
 * { "chunkSize": n, "digests": [...] }.
 *
 * Chunks are hashed with the blob's own algorithm and cut as transfer/chunk-plan.ts:planChunks cuts
 * them (fixed size from byte 0, the last shorter).
 */
import { newHash, requireDigest } from '../oci/digest.ts';
import type { Storage } from '../storage/storage.ts';
import type { ChunkDigests } from '../transfer/range-source.ts';

const KiB64 = 64 * 1024;

/** How long a relay holds a piece-list request for a blob its own transfer is still fetching. */
export const CHUNK_LIST_WAIT_MS = 20_000;

/** Chunk sizes a client may ask for: multiples of 64 KiB up to 1 GiB (each new size costs a pass over the blob). */
export function isValidChunkSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= KiB64 && n <= 1024 ** 3 && n % KiB64 === 0;
}

export class ChunkLists {
  private readonly computing = new Map<string, Promise<ChunkDigests | undefined>>();

  constructor(private readonly store: Storage) {}

  /** The list for a blob in the store; undefined when the store does not hold it. One computation per key. */
  async get(digest: string, chunkSize: number): Promise<ChunkDigests | undefined> {
    if (!isValidChunkSize(chunkSize)) throw new RangeError(`invalid chunk size ${chunkSize}`);
    const key = `chunks-${chunkSize}.json`;
    const saved = await this.store.blobs.readSidecar(digest, key);
    if (saved !== undefined) return JSON.parse(saved) as ChunkDigests;
    if (!(await this.store.blobs.has(digest))) return undefined;
    const id = `${digest} ${key}`;
    let pending = this.computing.get(id);
    if (!pending) {
      pending = this.compute(digest, chunkSize).then(async (list) => {
        if (list) await this.store.blobs.writeSidecar(digest, key, JSON.stringify(list));
        return list;
      });
      this.computing.set(id, pending);
      const forget = (): void => {
        this.computing.delete(id);
      };
      pending.then(forget, forget);
    }
    return pending;
  }

  /** Drops every list of a blob (it left the store). */
  async remove(digest: string): Promise<void> {
    await this.store.blobs.deleteSidecars(digest);
  }

  /** undefined when the blob left the store before it could be read (as if it had never been there). */
  private async compute(digest: string, chunkSize: number): Promise<ChunkDigests | undefined> {
    const { algorithm } = requireDigest(digest);
    const stream = await this.store.blobs.read(digest);
    if (!stream) return undefined;
    const digests: string[] = [];
    let hash = newHash(algorithm);
    let inChunk = 0;
    for await (const data of stream as AsyncIterable<Buffer>) {
      for (let at = 0; at < data.length;) {
        const take = Math.min(chunkSize - inChunk, data.length - at);
        hash.update(data.subarray(at, at + take));
        at += take;
        inChunk += take;
        if (inChunk === chunkSize) {
          digests.push(`${algorithm}:${hash.digest('hex')}`);
          hash = newHash(algorithm);
          inChunk = 0;
        }
      }
    }
    if (inChunk > 0) digests.push(`${algorithm}:${hash.digest('hex')}`);
    return { chunkSize, digests };
  }
}
