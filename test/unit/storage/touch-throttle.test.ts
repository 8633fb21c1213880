import assert from 'node:assert/strict';
import { TouchThrottle } from '../../../lib/storage/touch-throttle.ts';

describe('TouchThrottle: one touch per digest per interval, memory flat', () => {
  it('lets a digest through once per interval, each digest on its own', () => {
    const t = new TouchThrottle(1000);
    assert.equal(t.due('a', 0), true);
    assert.equal(t.due('a', 999), false);
    assert.equal(t.due('b', 999), true);
    assert.equal(t.due('a', 1000), true);
    t.forget('b');
    assert.equal(t.due('b', 1001), true, 'a forgotten digest is due at once');
  });

  it('forgets digests touched more than an interval ago once past its bound (the S3 store kept one entry per digest ever served)', () => {
    const t = new TouchThrottle(1000, 100);
    for (let i = 0; i < 10_000; i++) t.due(`d${i}`, i * 10);
    // Touched within the last interval (1000 ms at 10 ms apart): about 100; never all 10 000.
    assert.ok(t.size <= 201, `${t.size} digests remembered`);
    assert.equal(t.due('d9999', 99_995), false, 'a recent one is still throttled');
  });

  it('does not sweep on every call while more digests than its bound are within the interval (review: each new digest scanned the whole map)', () => {
    const t = new TouchThrottle(60_000, 100);
    let scans = 0;
    const map = (t as unknown as { last: Map<string, number> }).last;
    const entries = map.entries.bind(map);
    map[Symbol.iterator] = () => { scans++; return entries(); };
    for (let i = 0; i < 1000; i++) t.due(`d${i}`, i);
    assert.equal(t.size, 1000, 'all within the interval: all remembered');
    assert.ok(scans <= 5, `${scans} sweeps for 1000 touches`);
  });
});
