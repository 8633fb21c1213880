/** The time this process could not run, told from a timer that comes late (loop-lag.ts). */
import assert from 'node:assert/strict';
import { LoopLag } from '../../lib/transfer/loop-lag.ts';
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
});
