/** Per-piece digests (offered by a ferry relay): which pieces of a partial blob are wrong. */
import type { PositionalReader } from '../storage/partial-blobs.ts';
import { withSlab } from '../storage/buffer-pool.ts';
import type { Algorithm } from '../oci/digest.ts';
import { planChunks } from './chunk-plan.ts';
import type { ByteRange } from '../oci/range.ts';
import { bareHex, hashRange } from './piece-check.ts';
import type { ChunkDigests } from './range-source.ts';

/** The list's digests as bare hex, when it fits a blob of `size` cut at `chunkSize`; else undefined. */
export function pieceDigestsFor(list: ChunkDigests | undefined, size: number, chunkSize: number): string[] | undefined {
  if (!list || list.chunkSize !== chunkSize || list.digests.length !== planChunks(size, chunkSize).length) return undefined;
  return list.digests.map(bareHex);
}

/** The pieces whose bytes as stored do not match; undefined when the list does not fit the blob. */
export async function findBadChunks(stored: PositionalReader, size: number, list: ChunkDigests, algorithm: Algorithm): Promise<ByteRange[] | undefined> {
  const expected = pieceDigestsFor(list, size, list.chunkSize);
  if (!expected) return undefined;
  return withSlab(async (buf) => {
    const bad: ByteRange[] = [];
    for (const [i, c] of planChunks(size, list.chunkSize).entries()) {
      if ((await hashRange(stored, c, algorithm, buf)) !== expected[i]) bad.push(c);
    }
    return bad;
  });
}
