import assert from 'node:assert/strict';
import { ConcurrencyController } from '../../lib/transfer/concurrency.ts';
import { backoffMs, parseRetryAfter } from '../../lib/transfer/retry-policy.ts';
import { parseContentRange } from '../../lib/transfer/range-source.ts';
import { RateMeter } from '../../lib/transfer/rate-meter.ts';

describe('transfer policies', () => {
  it('backs off exponentially with jitter between half and all of the ceiling', () => {
    const p = { baseMs: 100, maxMs: 1000 };
    assert.equal(backoffMs(1, p, () => 0), 50);
    assert.equal(backoffMs(1, p, () => 0.999999) < 100, true);
    assert.equal(backoffMs(3, p, () => 0), 200);
    assert.equal(backoffMs(20, p, () => 0), 500);
  });

  it('retries almost at once after an attempt that brought bytes', () => {
    assert.equal(backoffMs(0, { baseMs: 100, maxMs: 1000 }, () => 0.99) < 25, true);
  });

  it('honours Retry-After over the backoff, bounded', () => {
    assert.equal(backoffMs(1, { baseMs: 100, maxMs: 1000 }, () => 0, 3000), 3000);
    assert.equal(backoffMs(1, { baseMs: 100, maxMs: 1000 }, () => 0, 3_600_000), 4000);
    assert.equal(parseRetryAfter('7'), 7000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
    assert.equal(parseRetryAfter('soon'), undefined);
  });

  it('parses Content-Range and rejects malformed ones', () => {
    assert.deepEqual(parseContentRange('bytes 0-99/1000'), { start: 0, end: 99, total: 1000 });
    assert.deepEqual(parseContentRange('bytes 5-9/*'), { start: 5, end: 9, total: undefined });
    for (const bad of [undefined, '', 'bytes 9-5/10', 'items 0-1/2', 'bytes */10']) assert.equal(parseContentRange(bad), undefined);
  });

  it('adds connections while goodput rises and stops at the cap', () => {
    const c = new ConcurrencyController(2, 6);
    const seen = [1, 2, 3, 4, 5, 6, 7, 8].map((r) => c.tick(r * 100, true));
    assert.deepEqual(seen.slice(0, 3), [3, 4, 5]);
    assert.equal(seen.at(-1), 6);
  });

  it('steps back after a growth that made goodput worse, and cuts on overload', () => {
    const c = new ConcurrencyController(1, 20);
    c.tick(100, true);
    c.tick(200, true);
    const before = c.current;
    assert.equal(c.tick(100, true), before - 1);
    c.overloaded();
    assert.equal(c.tick(100, true), Math.floor((before - 1) * 0.7));
  });

  it('does not grow when no chunk waits for a connection', () => {
    const c = new ConcurrencyController(2, 8);
    for (const r of [100, 200, 400, 800]) c.tick(r, false);
    assert.equal(c.current, 2);
  });

  it('measures goodput over a moving window', () => {
    const m = new RateMeter(1000, 100, 0);
    for (let t = 0; t < 2000; t += 100) m.add(1000, t);
    assert.equal(Math.round(m.rate(1999)), 10_000);
    assert.equal(m.rate(5000), 0);
  });
});
