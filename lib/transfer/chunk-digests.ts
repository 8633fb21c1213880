/** Per-chunk digests (offered by a ferry relay): which chunks of a part file are wrong. */
import type { FileHandle } from 'node:fs/promises';
import { newHash, type Algorithm } from '../oci/digest.ts';
import { planChunks, type ByteRange } from './chunk-plan.ts';
import type { ChunkDigests } from './range-source.ts';

const READ = 1024 * 1024;

/** The chunks whose bytes on disk do not match; undefined when the list does not fit the blob. */
export async function findBadChunks(fh: FileHandle, size: number, list: ChunkDigests, algorithm: Algorithm): Promise<ByteRange[] | undefined> {
  const chunks = planChunks(size, list.chunkSize);
  if (chunks.length !== list.digests.length) return undefined;
  const buf = Buffer.allocUnsafe(READ);
  const bad: ByteRange[] = [];
  for (const [i, c] of chunks.entries()) {
    const hash = newHash(algorithm);
    for (let pos = c.start; pos <= c.end;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(READ, c.end + 1 - pos), pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    const expected = (list.digests[i] as string).replace(/^[a-z0-9]+:/, '');
    if (hash.digest('hex') !== expected) bad.push(c);
  }
  return bad;
}
