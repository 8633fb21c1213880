import assert from 'node:assert/strict';
import { FailureThrottle } from '../../lib/relay/failure-throttle.ts';

describe('relay failure throttle', () => {
  it('lets the first failure through and doubles the delay with each one after, up to the cap', () => {
    const t = new FailureThrottle({ baseMs: 100, maxDelayMs: 1000, now: () => 0 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => t.fail('192.0.2.1')), [0, 100, 200, 400, 800, 1000]);
    assert.equal(t.fail('192.0.2.2'), 0, 'another address has its own score');
  });

  it('forgets failures with time: the score halves every half-life', () => {
    let now = 0;
    const t = new FailureThrottle({ baseMs: 100, halfLifeMs: 1000, now: () => now });
    for (let i = 0; i < 4; i++) t.fail('a');
    assert.equal(t.score('a'), 4);
    now = 1000;
    assert.equal(t.score('a'), 2);
    now = 10_000;
    assert.ok(t.score('a') < 0.01);
    assert.equal(t.fail('a'), 0);
  });

  it('keeps at most maxAddresses scores', () => {
    const t = new FailureThrottle({ maxAddresses: 100, now: () => 0 });
    for (let i = 0; i < 1000; i++) t.fail(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(t.addresses, 100);
  });
});
