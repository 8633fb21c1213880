import assert from 'node:assert/strict';
import { MAX_PIECES, chunkSizeFor, nextPowerOfTwo, pieceSizeFor, planChunks, planMissing } from '../../lib/transfer/chunk-plan.ts';
import { RangeSet } from '../../lib/transfer/range-set.ts';

const MiB = 1024 * 1024;
const defaults = { chunksPerBlob: 500, minChunkBytes: 4 * MiB, maxChunkBytes: 64 * MiB };

describe('chunk plan', () => {
  const sizes: Array<[string, number, typeof defaults, number]> = [
    ['a 1 KiB blob gets the minimum chunk', 1024, defaults, 4 * MiB],
    ['a 1 GiB blob gets the minimum (1 GiB / 500 rounds up to 4 MiB)', 1024 * MiB, defaults, 4 * MiB],
    ['a 3 GiB blob rounds 6.1 MiB up to 8 MiB', 3 * 1024 * MiB, defaults, 8 * MiB],
    ['a 10 GiB blob rounds 20.5 MiB up to 32 MiB', 10 * 1024 * MiB, defaults, 32 * MiB],
    ['a 100 GiB blob is clamped to the maximum', 100 * 1024 * MiB, defaults, 64 * MiB],
    ['an exact power of two stays', 500 * 16 * MiB, defaults, 16 * MiB],
    ['small test chunks honour a small minimum', 8 * MiB, { chunksPerBlob: 500, minChunkBytes: 256 * 1024, maxChunkBytes: MiB }, 256 * 1024],
    ['a minimum above the maximum wins', 10 * MiB, { chunksPerBlob: 500, minChunkBytes: 8 * MiB, maxChunkBytes: 4 * MiB }, 8 * MiB],
  ];
  for (const [name, size, cfg, expected] of sizes) {
    it(`sizes chunks: ${name}`, () => assert.equal(chunkSizeFor(size, cfg), expected));
  }

  it('sizes pieces: pieceBytes, never more than a chunk, larger past MAX_PIECES pieces', () => {
    const KiB = 1024;
    assert.equal(pieceSizeFor(80 * MiB, 4 * MiB, 256 * KiB), 256 * KiB);
    assert.equal(pieceSizeFor(80 * MiB, 128 * KiB, 256 * KiB), 128 * KiB);
    assert.equal(pieceSizeFor(MAX_PIECES * 256 * KiB, 4 * MiB, 256 * KiB), 256 * KiB);
    assert.equal(pieceSizeFor(MAX_PIECES * 256 * KiB + 1, 4 * MiB, 256 * KiB), 512 * KiB);
    assert.equal(pieceSizeFor(100 * 1024 * MiB, 64 * MiB, 256 * KiB), 32 * MiB);
  });

  it('rounds to the next power of two', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 1000, 1024, 1025].map(nextPowerOfTwo), [1, 1, 2, 4, 4, 8, 1024, 1024, 2048]);
  });

  const plans: Array<[number, number, Array<[number, number]>]> = [
    [0, 4, []],
    [1, 4, [[0, 0]]],
    [4, 4, [[0, 3]]],
    [10, 4, [[0, 3], [4, 7], [8, 9]]],
    [12, 4, [[0, 3], [4, 7], [8, 11]]],
  ];
  for (const [size, chunk, expected] of plans) {
    it(`plans ${size} bytes in chunks of ${chunk} as ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(planChunks(size, chunk).map((r) => [r.start, r.end]), expected);
    });
  }

  it('refuses a chunk size of zero', () => assert.throws(() => planChunks(10, 0), RangeError));

  it('plans only the bytes missing from each chunk, lowest offset first', () => {
    const done = new RangeSet([{ start: 0, end: 6 }, { start: 8, end: 9 }]);
    assert.deepEqual(planMissing(12, 4, done).map((r) => [r.start, r.end]), [[6, 7], [9, 11]]);
  });

  it('plans nothing when everything is on disk', () => {
    assert.deepEqual(planMissing(12, 4, new RangeSet([{ start: 0, end: 12 }])), []);
  });
});

describe('range set', () => {
  it('merges overlapping and touching intervals', () => {
    const s = new RangeSet();
    s.add(10, 20);
    s.add(0, 5);
    s.add(5, 10);
    s.add(30, 40);
    s.add(35, 45);
    assert.deepEqual(s.intervals, [{ start: 0, end: 20 }, { start: 30, end: 45 }]);
    assert.equal(s.size, 35);
  });

  it('removes a hole from the middle of an interval', () => {
    const s = new RangeSet([{ start: 0, end: 100 }]);
    s.remove(40, 60);
    assert.deepEqual(s.intervals, [{ start: 0, end: 40 }, { start: 60, end: 100 }]);
  });

  it('tells where the covered run starting at an offset ends', () => {
    const s = new RangeSet([{ start: 0, end: 10 }, { start: 20, end: 30 }]);
    assert.deepEqual([s.coveredEnd(0), s.coveredEnd(5), s.coveredEnd(10), s.coveredEnd(25)], [10, 10, 10, 30]);
  });

  it('lists the gaps of a window', () => {
    const s = new RangeSet([{ start: 5, end: 10 }, { start: 20, end: 30 }]);
    assert.deepEqual(s.gaps(0, 25), [{ start: 0, end: 5 }, { start: 10, end: 20 }]);
    assert.deepEqual(s.gaps(6, 9), []);
    assert.deepEqual(s.gaps(28, 40), [{ start: 30, end: 40 }]);
  });
});
