import assert from 'node:assert/strict';
import { ConcurrencyController } from '../../lib/transfer/concurrency.ts';
import { backoffMs, parseRetryAfter, type RetryPolicy } from '../../lib/retry/policy.ts';
import { parseContentRange } from '../../lib/oci/range.ts';
import { RateMeter } from '../../lib/transfer/rate-meter.ts';

describe('transfer policies', () => {
  const equal = (baseMs: number, maxMs: number): RetryPolicy => ({ attempts: 1000, baseMs, maxMs, jitter: 'equal', maxRetryAfterMs: maxMs * 4 });
  it('backs off exponentially with jitter between half and all of the ceiling', () => {
    const p = equal(100, 1000);
    assert.equal(backoffMs(1, p, () => 0), 50);
    assert.equal(backoffMs(1, p, () => 0.999999) < 100, true);
    assert.equal(backoffMs(3, p, () => 0), 200);
    assert.equal(backoffMs(20, p, () => 0), 500);
  });

  it('retries almost at once after an attempt that brought bytes', () => {
    assert.equal(backoffMs(0, equal(100, 1000), () => 0.99) < 25, true);
  });

  it('honours Retry-After over the backoff, bounded', () => {
    assert.equal(backoffMs(1, equal(100, 1000), () => 0, 3000), 3000);
    assert.equal(backoffMs(1, equal(100, 1000), () => 0, 3_600_000), 4000);
    assert.equal(parseRetryAfter('7'), 7000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
    assert.equal(parseRetryAfter('soon'), undefined);
  });

  it('parses Content-Range and rejects malformed ones', () => {
    assert.deepEqual(parseContentRange('bytes 0-99/1000'), { start: 0, end: 99, total: 1000 });
    assert.deepEqual(parseContentRange('bytes 5-9/*'), { start: 5, end: 9 });
    for (const none of [undefined, '']) assert.equal(parseContentRange(none), undefined);
    for (const bad of ['bytes 9-5/10', 'items 0-1/2', 'bytes */10']) assert.equal(parseContentRange(bad), 'invalid');
  });

  it('doubles connections while goodput grows in proportion (slow start) and stops at the cap', () => {
    const c = new ConcurrencyController(2, 24);
    // 100 per connection: every doubling brings the goodput it promised.
    const seen = [200, 400, 800, 1600, 2400].map((r) => c.tick(r, true));
    assert.deepEqual(seen, [4, 8, 16, 24, 24]);
    assert.equal(c.slowStart, true);
  });

  it('ends slow start when the aggregate caps goodput, keeping what it needs plus a margin', () => {
    const c = new ConcurrencyController(4, 64);
    // 1 per connection up to an aggregate of 16: 4 -> 8 -> 16 -> 32 brings nothing more.
    for (const r of [4, 8, 15]) c.tick(r, true);
    assert.equal(c.current, 32);
    assert.equal(c.tick(16, true), 32, 'one tick that did not follow is judged again');
    assert.equal(c.slowStart, true);
    const kept = c.tick(16, true);
    assert.equal(c.slowStart, false);
    assert.equal(kept, Math.ceil((16 / (15 / 16)) * 1.25));
    assert.ok(kept > 16 && kept < 32);
  });

  it('leaps two doublings at once (a fresh link\'s first answer), measures the level it leapt from, then judges the leap', () => {
    // 100 per connection and no aggregate cap: the leap pays, slow start goes on at the cap.
    const open = new ConcurrencyController(8, 32);
    assert.equal(open.leap(100), 32);
    assert.equal(open.tick(800, true, true, 8), 32, 'the round trip after the leap: the 8 before it deliver');
    assert.equal(open.tick(3150, true, true, 31.5), 32);
    assert.equal(open.slowStart, true);
    // An aggregate of 1600 (16 connections): the leap brought half what it promised; judged twice, then what the goodput needs.
    const capped = new ConcurrencyController(8, 32);
    capped.leap(100);
    capped.tick(800, true, true, 8);
    assert.equal(capped.tick(1600, true, true, 32), 32, 'one tick that did not follow is judged again');
    assert.equal(capped.slowStart, true);
    assert.equal(capped.tick(1600, true, true, 32), Math.ceil(16 * 1.25));
    assert.equal(capped.slowStart, false);
    // An aggregate 8 connections fill: not below 16, where slow start went unjudged before the leap took both doublings at once.
    const narrow = new ConcurrencyController(8, 32);
    narrow.leap(100);
    narrow.tick(800, true, true, 8);
    narrow.tick(800, true, true, 32);
    assert.equal(narrow.tick(800, true, true, 32), 16);
    assert.equal(narrow.slowStart, false);
  });

  it('leaps only as far as the work waiting would use, and not at all with none (one request of a whole blob)', () => {
    assert.equal(new ConcurrencyController(1, 4).leap(1), 1);
    assert.equal(new ConcurrencyController(1, 4).leap(2), 2);
    assert.equal(new ConcurrencyController(8, 32).leap(20), 20);
    assert.equal(new ConcurrencyController(8, 32).leap(9), 16, 'the first doubling as before, with one request waiting');
  });

  it('judges a doubling by the goodput per connection that delivered: added requests still waiting for their first byte do not end slow start', () => {
    const c = new ConcurrencyController(8, 64);
    c.leap(100);
    c.tick(800, true, true, 8);
    // The 24 added have not answered yet (a long round trip): allowed 32, delivering 9.
    assert.equal(c.tick(900, true, true, 9), 32);
    assert.equal(c.tick(950, true, true, 9.5), 32);
    assert.equal(c.slowStart, true, 'judged before the added connections delivered, slow start would have ended at 8 x 1.25');
    // They deliver: the leap paid, the next doubling.
    assert.equal(c.tick(3200, true, true, 32), 64);
  });

  it('after slow start, grows by a quarter per round while goodput rises and undoes a growth that made it worse', () => {
    const c = new ConcurrencyController(4, 64, { avoidanceTicks: 1 });
    c.tick(400, true);
    c.tick(500, true);
    c.tick(500, true); // 8 connections brought 100 of the promised 400, twice: slow start ends
    assert.equal(c.slowStart, false);
    const base = c.current;
    c.tick(500, true); // the first round only sets the reference
    assert.equal(c.tick(600, true), base + Math.max(1, Math.floor(base / 4)));
    const grown = c.current;
    assert.equal(c.tick(700, true), grown + Math.max(1, Math.floor(grown / 4)));
    assert.equal(c.tick(400, true), grown);
  });

  it('undoes a growth or a probe that left goodput flat, so a capped link does not creep to the maximum', () => {
    const c = new ConcurrencyController(4, 64, { avoidanceTicks: 1 });
    // 1 per connection, the aggregate capped at 16.
    for (const r of [4, 8, 15, 16, 16]) c.tick(r, true);
    assert.equal(c.slowStart, false);
    const kept = c.current;
    const seen: number[] = [];
    for (let i = 0; i < 40; i++) seen.push(c.tick(16, true));
    assert.ok(Math.max(...seen) <= kept + 1, `flat goodput moved it from ${kept} to ${Math.max(...seen)}`);
    assert.ok(seen.filter((n) => n === kept + 1).length >= 5, 'it keeps probing one more connection');
    assert.ok(Math.min(...seen) >= kept, 'flat goodput is no reason to shrink');
  });

  it('judges several ticks at once after slow start, so one noisy interval does not move it', () => {
    const c = new ConcurrencyController(4, 64, { avoidanceTicks: 3 });
    for (const r of [400, 450, 450]) c.tick(r, true);
    assert.equal(c.slowStart, false);
    const base = c.current;
    for (const r of [450, 450, 450, 900, 0, 450]) c.tick(r, true);
    assert.equal(c.current, base);
  });

  it('keeps doubling past one tick that did not follow when the next makes up for it (its bytes were booked late: a stalled disk write, a busy CPU)', () => {
    const c = new ConcurrencyController(2, 8);
    assert.equal(c.tick(5, true), 4);
    // 4 connections: the machine stalled, the link did not; the next tick carries what this one missed.
    assert.equal(c.tick(5.2, true), 4);
    assert.equal(c.slowStart, true);
    assert.equal(c.tick(12, true), 8);
    assert.equal(c.slowStart, true);
  });

  it('cuts hard on overload and leaves slow start', () => {
    const c = new ConcurrencyController(1, 40);
    c.tick(100, true);
    c.tick(200, true);
    const before = c.current;
    c.overloaded();
    assert.equal(c.tick(200, true), Math.floor(before * 0.7));
    assert.equal(c.slowStart, false);
  });

  it('ends slow start on a transfer at its own cap (nothing waits, every connection busy) instead of freezing there', () => {
    const c = new ConcurrencyController(8, 32);
    assert.equal(c.tick(6.5, true), 16);
    assert.equal(c.tick(14, true), 32);
    // 32 busy, 16 MB/s: the doubling brought 2.6 of the 14 it promised (twice); no chunk waits.
    assert.equal(c.tick(16.6, false, true), 32);
    const kept = c.tick(16.6, false, true);
    assert.equal(c.slowStart, false);
    assert.equal(kept, Math.ceil((16.6 / (14 / 16)) * 1.25));
    assert.ok(kept < 32);
  });

  it('learns nothing from intervals where the connections allowed were not all in use', () => {
    const c = new ConcurrencyController(4, 32);
    assert.equal(c.tick(4, true), 8);
    for (const r of [5, 5, 5, 5]) assert.equal(c.tick(r, false, false), 8);
    assert.equal(c.slowStart, true);
    // Saturated again, and the doubling to 8 paid off against the last saturated interval.
    assert.equal(c.tick(8, true, true), 16);
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
