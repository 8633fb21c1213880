import assert from 'node:assert/strict';
import { BufferPool } from '../../../lib/storage/buffer-pool.ts';

const KiB = 1024;

describe('BufferPool', () => {
  const opts = { slabSize: 16 * KiB, maxSlabsPerRead: 4, budget: 256 * KiB };

  it('lets each of few readers read several slabs at once', () => {
    const pool = new BufferPool(opts);
    assert.equal(pool.slabsPerRead(1), 4);
    assert.equal(pool.slabsPerRead(2), 4);
    assert.equal(pool.slabsPerRead(0), 4);
  });

  it('gives fewer slabs per read as readers come, keeping double-buffered readers within the budget', () => {
    const pool = new BufferPool(opts);
    assert.equal(pool.slabsPerRead(3), 2);
    assert.equal(pool.slabsPerRead(4), 2);
    assert.equal(pool.slabsPerRead(5), 1);
    for (const readers of [1, 2, 3, 4, 5, 6, 7, 8]) {
      assert.ok(pool.slabsPerRead(readers) * opts.slabSize * 2 * readers <= opts.budget, `readers=${readers}`);
    }
  });

  it('never gives less than one slab per read, whatever the crowd', () => {
    assert.equal(new BufferPool(opts).slabsPerRead(10_000), 1);
  });

  it('hands a released slab out again instead of allocating', () => {
    const pool = new BufferPool(opts);
    const a = pool.acquire();
    assert.equal(a.length, 16 * KiB);
    pool.release(a);
    assert.equal(pool.idleBytes, 16 * KiB);
    assert.equal(pool.acquire(), a);
    assert.equal(pool.idleBytes, 0);
    assert.notEqual(pool.acquire(), a);
  });

  it('keeps no more idle bytes than the budget', () => {
    const pool = new BufferPool(opts);
    const slabs = Array.from({ length: 20 }, () => pool.acquire());
    for (const s of slabs) pool.release(s);
    assert.equal(pool.idleBytes, 256 * KiB);
  });

  it('stays usable when slabs are never given back (failed writes)', () => {
    const pool = new BufferPool(opts);
    for (let i = 0; i < 100; i++) pool.acquire();
    const b = pool.acquire();
    pool.release(b);
    assert.equal(pool.acquire(), b, 'lost slabs must not stop the pool from keeping new ones');
  });

  it('ignores buffers that are not whole slabs (views, other sizes)', () => {
    const pool = new BufferPool(opts);
    pool.release(Buffer.alloc(5000));
    pool.release(Buffer.alloc(32 * KiB));
    pool.release(pool.acquire().subarray(0, 1000));
    pool.release(Buffer.allocUnsafeSlow(32 * KiB).subarray(16 * KiB));
    assert.equal(pool.idleBytes, 0);
  });

  it('refuses a count of slabs per read that is not a power of two', () => {
    assert.throws(() => new BufferPool({ ...opts, maxSlabsPerRead: 3 }));
    assert.throws(() => new BufferPool({ ...opts, slabSize: 0 }));
  });
});
