/** The rates the tail plan compares are on one clock, net of the process's own lag (tail-rates.ts; fake clock). */
import assert from 'node:assert/strict';
import { LoopLag } from '../../lib/transfer/loop-lag.ts';
import { liveRange, type LiveRange } from '../../lib/transfer/range-fetcher.ts';
import { planTail } from '../../lib/transfer/tail-plan.ts';
import { TailRates } from '../../lib/transfer/tail-rates.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('tail rates', () => {
  it('a pause of the process (its bytes read once it runs again) changes none of the tail plan\'s decisions', () => {
    /**
     * Two ranges of a transfer whose first requests have not ended (the plan takes the transfer's
     * goodput as a new connection's): one at 1 MiB/s, one at 64 KiB/s, read every 50 ms. The same
     * reads in the process's own time; `starved`, the process also ran nothing for 1.5 s after
     * its first second (a loaded machine). Returns the plan 3 s later.
     */
    const plan = (starved: boolean): { steps: string[]; lagShare: number | undefined } => {
      let t = 0;
      const lag = new LoopLag(() => t, 100);
      lag.tick();
      const rates = new TailRates(() => lag.now());
      const fast = liveRange({ start: 0, end: 8 * MiB - 1 });
      const slow = liveRange({ start: 8 * MiB, end: 16 * MiB - 1 });
      const read = (r: LiveRange, bytes: number): void => {
        r.firstByte ??= { pos: r.pos, at: rates.now() };
        r.pos += bytes;
        r.claimed = r.pos;
        rates.add(bytes);
      };
      const onTime = (ms: number): void => {
        for (let s = 0; s < ms; s += 50) {
          t += 50;
          if (t % 100 === 0) lag.tick();
          read(fast, 50 * KiB);
          read(slow, 3 * KiB);
        }
      };
      fast.askedAt = slow.askedAt = rates.now();
      onTime(1000);
      if (starved) {
        // The tick due at +100 ms runs 1.5 s late; the bytes that came meanwhile are read at once.
        t += 1600;
        lag.tick();
        read(fast, 100 * KiB);
        read(slow, 6 * KiB);
      } else {
        onTime(100);
      }
      onTime(2900);
      // The fast range nearly done, the slow one far from it.
      fast.end = fast.pos + 400 * KiB - 1;
      slow.end = slow.pos + 1 * MiB - 1;
      const running = [fast, slow];
      const lagShare = lag.share();
      const steps = planTail(running, {
        free: 2, linkLimit: 16, now: rates.now(), rttMs: 150, perConnection: rates.perConnection(running.length),
        paired: () => false, lossBudget: 4 * MiB, lagShare,
      });
      const name = (r: LiveRange): string => (r === fast ? 'fast' : r === slow ? 'slow' : `${r.start}-${r.end}`);
      return {
        lagShare,
        steps: steps.map((s) => (s.kind === 'split' ? `split ${name(s.range)} at ${s.rest.start} risk ${s.risk.toFixed(0)}` : `copy ${name(s.range)} from ${s.from} risk ${s.risk.toFixed(0)}`)),
      };
    };
    const onTime = plan(false);
    const starved = plan(true);
    // Long past the pause: the plan may act (tail-plan.ts TAIL_MAX_LAG_SHARE).
    assert.ok(starved.lagShare !== undefined && starved.lagShare < 0.1, `lag share ${starved.lagShare}`);
    assert.ok(onTime.steps.length > 0 && onTime.steps[0]!.startsWith('split slow'), `the slow range is split: ${onTime.steps.join('; ')}`);
    assert.deepEqual(starved.steps, onTime.steps);
  });
});
