/** The time this process could not run, told from a timer that comes late (loop-lag.ts). */
import assert from 'node:assert/strict';
import { LoopLag, loopLag } from '../../lib/transfer/loop-lag.ts';
import { silenceTimer } from '../../lib/transfer/range-fetcher.ts';
import { starve } from './harness.ts';

describe('loop lag', () => {
  it('counts the late part of a tick, and of one overdue now, once; ticks on time count nothing', () => {
    let t = 1000;
    const lag = new LoopLag(() => t, 100);
    // Nobody holds it yet: the plain clock.
    assert.equal(lag.lagged(), 0);
    lag.tick();
    for (let i = 0; i < 10; i++) {
      t += 100;
      lag.tick();
    }
    assert.equal(lag.lagged(), 0);
    assert.equal(lag.now(), t);
    // The next tick is due at +100; at +700 it is 600 ms overdue: that much the process did not run.
    t += 700;
    assert.equal(lag.lagged(), 600);
    assert.equal(lag.now(), t - 600);
    // The late tick itself adds nothing more.
    lag.tick();
    assert.equal(lag.lagged(), 600);
    t += 100;
    lag.tick();
    t += 50;
    assert.equal(lag.lagged(), 600);
    assert.equal(lag.now(), t - 600);
  });

  it('tells the share of the last second the process could not run: none on time, half when each tick comes 100 ms late', () => {
    let t = 0;
    const lag = new LoopLag(() => t, 100);
    const share = (): number => lag.share() ?? NaN;
    lag.tick();
    for (let i = 0; i < 20; i++) {
      // Not known until the ticks have run for a second.
      if (i === 5) assert.equal(lag.share(), undefined);
      t += 100;
      lag.tick();
    }
    assert.equal(lag.share(), 0);
    // Starved: each tick 100 ms late. From the first late one on the share grows, to about half within a second or two.
    t += 200;
    lag.tick();
    assert.ok(share() > 0.09, `share ${share()}`);
    for (let i = 0; i < 15; i++) {
      t += 200;
      lag.tick();
    }
    assert.ok(Math.abs(share() - 0.5) < 0.05, `share ${share()}`);
    // A tick overdue right now counts before it runs.
    t += 600;
    assert.ok(share() > 0.6, `share ${share()}`);
    // Back on time: within a couple of seconds it is near nothing again.
    for (let i = 0; i < 30; i++) {
      t += 100;
      lag.tick();
    }
    assert.ok(share() < 0.05, `share ${share()}`);
  });

  it('held, sees the process starved by its own timer; released, runs as the plain clock', async () => {
    const lag = new LoopLag();
    const release = lag.hold();
    await new Promise((r) => setTimeout(r, 150));
    const before = lag.lagged();
    starve(500);
    // The tick due within 100 ms came (or is overdue) at least 400 ms late.
    assert.ok(lag.lagged() - before >= 400, `lag ${lag.lagged() - before} ms`);
    release();
    const frozen = lag.lagged();
    starve(300);
    assert.equal(lag.lagged(), frozen);
  });

  it('the attempt\'s fixed timer still fires on a process starved for good: 3x its time on the plain clock at most', async () => {
    // A running attempt holds the process's tracker (range-fetcher.ts).
    const release = loopLag.hold();
    const t0 = performance.now();
    let firedAt: number | undefined;
    // stallSeconds 0.4 on a connection that is dead; the process runs in turns of 800 ms, so its own
    // clock moves ~100 ms a turn: 0.4 s of it would take ~3.2 s. The plain clock's bound: 1.2 s,
    // seen at the end of a turn (1.6 s).
    const timer = silenceTimer(400, () => false, () => {
      firedAt = performance.now() - t0;
    });
    try {
      while (firedAt === undefined && performance.now() - t0 < 8000) {
        starve(800);
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      timer.clear();
      release();
    }
    assert.ok(firedAt !== undefined && firedAt >= 1200 && firedAt < 2700, `fired after ${firedAt} ms`);
  });
});
