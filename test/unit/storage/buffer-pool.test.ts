import assert from 'node:assert/strict';
import { BufferPool } from '../../../lib/storage/buffer-pool.ts';

const KiB = 1024;

describe('BufferPool', () => {
  const opts = { maxChunk: 64 * KiB, minChunk: 4 * KiB, budget: 256 * KiB };

  it('gives each of few readers the largest chunk', () => {
    const pool = new BufferPool(opts);
    assert.equal(pool.chunkSize(1), 64 * KiB);
    assert.equal(pool.chunkSize(2), 64 * KiB);
  });

  it('shrinks chunks so that many double-buffered readers stay within the budget', () => {
    const pool = new BufferPool(opts);
    assert.equal(pool.chunkSize(4), 32 * KiB);
    assert.equal(pool.chunkSize(8), 16 * KiB);
    for (const readers of [3, 5, 7, 9, 16, 32]) assert.ok(pool.chunkSize(readers) * 2 * readers <= opts.budget, `readers=${readers}`);
  });

  it('never goes below the smallest chunk, whatever the crowd', () => {
    const pool = new BufferPool(opts);
    assert.equal(pool.chunkSize(10_000), 4 * KiB);
    assert.equal(pool.chunkSize(0), 64 * KiB);
  });

  it('hands a released buffer out again instead of allocating', () => {
    const pool = new BufferPool(opts);
    const a = pool.acquire(16 * KiB);
    assert.equal(a.length, 16 * KiB);
    pool.release(a);
    assert.equal(pool.idleBytes, 16 * KiB);
    assert.equal(pool.acquire(16 * KiB), a);
    assert.equal(pool.idleBytes, 0);
    assert.notEqual(pool.acquire(16 * KiB), a);
  });

  it('keeps buffers by size: a request for another size allocates', () => {
    const pool = new BufferPool(opts);
    const a = pool.acquire(16 * KiB);
    pool.release(a);
    const b = pool.acquire(32 * KiB);
    assert.equal(b.length, 32 * KiB);
    assert.equal(pool.idleBytes, 16 * KiB);
  });

  it('keeps no more idle bytes than the budget', () => {
    const pool = new BufferPool(opts);
    const bufs = Array.from({ length: 6 }, () => pool.acquire(64 * KiB));
    for (const b of bufs) pool.release(b);
    assert.equal(pool.idleBytes, 256 * KiB);
  });

  it('drops idle buffers of another size to keep one of the size now in use', () => {
    const pool = new BufferPool(opts);
    const bufs = Array.from({ length: 4 }, () => pool.acquire(64 * KiB));
    for (const b of bufs) pool.release(b);
    assert.equal(pool.idleBytes, 256 * KiB);
    const small = pool.acquire(16 * KiB);
    pool.release(small);
    assert.equal(pool.idleBytes, 192 * KiB + 16 * KiB);
    assert.equal(pool.acquire(16 * KiB), small);
  });

  it('stays usable when buffers are never given back (failed writes)', () => {
    const pool = new BufferPool(opts);
    for (let i = 0; i < 100; i++) pool.acquire(64 * KiB);
    const b = pool.acquire(64 * KiB);
    pool.release(b);
    assert.equal(pool.acquire(64 * KiB), b, 'lost buffers must not stop the pool from keeping new ones');
  });

  it('ignores buffers it could never hand out (odd sizes, out of range)', () => {
    const pool = new BufferPool(opts);
    pool.release(Buffer.alloc(5000));
    pool.release(Buffer.alloc(2 * KiB));
    pool.release(Buffer.alloc(128 * KiB));
    assert.equal(pool.idleBytes, 0);
  });

  it('refuses chunk bounds that are not powers of two', () => {
    assert.throws(() => new BufferPool({ ...opts, maxChunk: 60 * KiB }));
    assert.throws(() => new BufferPool({ ...opts, minChunk: 128 * KiB }));
  });
});
