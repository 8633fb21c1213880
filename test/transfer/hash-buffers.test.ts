/**
 * Hashing what was stored reads it back into pooled slabs, not a fresh buffer per burst: on a
 * relay pull pieces complete one at a time, and a fresh 1 MiB buffer per piece checked (and per
 * read-back of the prefix hash) was ~600 MB of garbage for a 423 MiB image (bench/link.ts relays3),
 * the larger part of what raised the mirror's peak RSS. Counted by allocations, not by RSS.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { PositionalReader } from '../../lib/storage/partial-blobs.ts';
import { PieceChecks } from '../../lib/transfer/piece-check.ts';
import { PrefixHasher } from '../../lib/transfer/prefix-hasher.ts';
import { RangeSet } from '../../lib/transfer/range-set.ts';
import type { ByteRange } from '../../lib/oci/range.ts';

const KiB = 1024;
const PIECE = 256 * KiB;
const PIECES = 16;
/** What counts as a read buffer: sockets and small reads allocate less. */
const BIG = 64 * KiB;

function memoryReader(bytes: Buffer): PositionalReader {
  return {
    read: (pos, into) => Promise.resolve(bytes.copy(into, 0, pos, Math.min(bytes.length, pos + into.length))),
  };
}

/** Counts buffers of BIG bytes or more allocated while `work` runs. */
async function bigAllocations(work: () => Promise<void>): Promise<number> {
  const names = ['allocUnsafe', 'allocUnsafeSlow', 'alloc'] as const;
  const originals = names.map((n) => Buffer[n]);
  let count = 0;
  for (const [i, name] of names.entries()) {
    const original = originals[i] as (size: number, ...rest: unknown[]) => Buffer;
    Object.assign(Buffer, {
      [name]: (size: number, ...rest: unknown[]): Buffer => {
        if (size >= BIG) count++;
        return original.call(Buffer, size, ...rest);
      },
    });
  }
  try {
    await work();
  } finally {
    for (const [i, name] of names.entries()) Object.assign(Buffer, { [name]: originals[i] });
  }
  return count;
}

const hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('hashing stored bytes', () => {
  const blob = randomBytes(PIECE * PIECES);
  const pieces: ByteRange[] = Array.from({ length: PIECES }, (_, i) => ({ start: i * PIECE, end: (i + 1) * PIECE - 1 }));

  it('checks pieces that complete one at a time with at most one read buffer, not one per piece', async () => {
    const expected = pieces.map((p) => hex(blob.subarray(p.start, p.end + 1)));
    const results: boolean[] = [];
    const checks = new PieceChecks(() => memoryReader(blob), pieces, expected, 'sha256', (i, good) => {
      results[i] = good;
    });
    const allocated = await bigAllocations(async () => {
      for (let i = 0; i < PIECES; i++) {
        checks.check(i);
        await checks.idle();
      }
    });
    assert.deepEqual(results, pieces.map(() => true));
    assert.ok(allocated <= 1, `${allocated} read buffers for ${PIECES} pieces`);
  });

  it('reads the prefix back piece by piece with at most one read buffer, and hashes it right', async () => {
    const held = new RangeSet();
    const hasher = new PrefixHasher(memoryReader(blob), held, 'sha256', () => {});
    const allocated = await bigAllocations(async () => {
      for (const p of pieces) {
        held.add(p.start, p.end + 1);
        hasher.catchUp();
        await hasher.idle();
      }
    });
    assert.equal(hasher.hashed, blob.length);
    assert.equal(hasher.digest(), `sha256:${hex(blob)}`);
    assert.ok(allocated <= 1, `${allocated} read buffers for ${PIECES} read-backs`);
  });

  it('reads the prefix back 1 MiB at a time: on the S3 backend each read is a ranged GET (found in review)', async () => {
    const big = randomBytes(8 * 1024 * KiB);
    let reads = 0;
    const reader = memoryReader(big);
    const counting: PositionalReader = { read: (pos, into) => { reads++; return reader.read(pos, into); } };
    const held = new RangeSet();
    const hasher = new PrefixHasher(counting, held, 'sha256', () => {});
    held.add(0, big.length);
    hasher.catchUp();
    await hasher.idle();
    assert.equal(hasher.digest(), `sha256:${hex(big)}`);
    assert.ok(reads <= 8, `${reads} reads for 8 MiB`);
  });
});
