/** The tail's free connections go to the ranges that need the longest, by time left at their own rate (fake clock). */
import assert from 'node:assert/strict';
import { liveRange, type LiveRange } from '../../lib/transfer/range-fetcher.ts';
import { planTail, type TailFigures } from '../../lib/transfer/tail-plan.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const NOW = 100_000;

/** A range of `size` bytes whose attempt delivered `bytes/s` for the last `ms` (and has `left` bytes to go). */
function running(start: number, left: number, bytesPerSec: number, ms = 2000): LiveRange {
  const done = Math.round((bytesPerSec * ms) / 1000);
  const r = liveRange({ start, end: start + done + left - 1 });
  r.pos = start + done;
  r.claimed = r.pos;
  r.askedAt = NOW - ms - 150;
  r.firstByte = { pos: start, at: NOW - ms };
  return r;
}

function figures(over: Partial<TailFigures> = {}): TailFigures {
  return { free: 1, linkLimit: 16, now: NOW, rttMs: 150, perConnection: 1 * MiB, paired: () => false, lossBudget: 4 * MiB, lagShare: 0, ...over };
}

describe('tail plan', () => {
  it('splits the range on the slow connection although it has no more bytes left than the fast ones', () => {
    // A relay on a slow route: 256 KiB/s per connection; the others 1 MiB/s. Same bytes left each.
    const fast = [0, 1, 2].map((i) => running(i * 8 * MiB, 1 * MiB, 1 * MiB));
    const slow = running(32 * MiB, 1 * MiB, 256 * KiB);
    const steps = planTail([...fast, slow], figures());
    assert.equal(steps.length, 1, JSON.stringify(steps));
    const step = steps[0]!;
    assert.equal(step.kind, 'split');
    assert.equal(step.range, slow);
    // Both parts end together: the slow connection keeps about a fifth (256 KiB/s against 1 MiB/s, plus a round trip).
    const kept = step.kind === 'split' ? step.rest.start - slow.pos : 0;
    const handed = slow.end + 1 - slow.pos - kept;
    const keptSeconds = kept / (256 * KiB);
    const handedSeconds = 0.15 + handed / MiB;
    assert.ok(Math.abs(keptSeconds - handedSeconds) < 0.05, `kept ${kept} (${keptSeconds.toFixed(2)} s), handed ${handed} (${handedSeconds.toFixed(2)} s)`);
  });

  it('leaves ranges that end within half a second alone, and splits ranges that end together but late while they hold less than half the link', () => {
    const ending = [0, 1, 2, 3].map((i) => running(i * 8 * MiB, 400 * KiB, 1 * MiB));
    assert.deepEqual(planTail(ending, figures({ free: 4 })), []);
    const late = [0, 1].map((i) => running(i * 8 * MiB, 2 * MiB, 1 * MiB));
    assert.deepEqual(planTail(late, figures({ free: 2 })).map((s) => s.kind === 'split' && late.indexOf(s.range)), [0, 1]);
    // On half the link's connections or more, what binds may be the link's total: only a straggler is split.
    const busy = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => running(i * 8 * MiB, 2 * MiB, 1 * MiB));
    assert.deepEqual(planTail(busy, figures({ free: 8 })), []);
    const straggler = running(64 * MiB, 2 * MiB, 256 * KiB);
    assert.deepEqual(planTail([...busy, straggler], figures({ free: 8 })).map((s) => s.range), [straggler]);
  });

  it('splits the ranges of a slow relay that end late together, although they hold half the link, while a new connection would end them in half their time', () => {
    // The last ranges of a blob: 8 on a relay of 256 KiB/s a connection (4 s to go each), 4 ending on one of 1 MiB/s.
    const slow = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => running(i * 8 * MiB, 1 * MiB, 256 * KiB));
    const ending = [8, 9, 10, 11].map((i) => running(i * 8 * MiB, 300 * KiB, 1 * MiB));
    const steps = planTail([...slow, ...ending], figures({ free: 4, linkLimit: 17 }));
    assert.equal(steps.length, 4, JSON.stringify(steps.map((s) => s.kind)));
    for (const step of steps) assert.ok(step.kind === 'split' && slow.includes(step.range), 'a slow relay\'s range split');
  });

  it('splits no more than the loss budget allows: each split loses about its rate times the round trip', () => {
    const late = [0, 1].map((i) => running(i * 8 * MiB, 2 * MiB, 1 * MiB));
    const steps = planTail(late, figures({ free: 2, lossBudget: 200 * KiB }));
    assert.equal(steps.length, 1, 'one split of 150 KiB at risk fits in 200 KiB, two do not');
    assert.ok(steps[0]!.kind === 'split' && Math.abs(steps[0]!.risk - 0.15 * MiB) < 1);
  });

  it('copies a straggler too small to split once a new connection would end it in less than half its time, and never copies a pair again', () => {
    // 96 KiB left at 32 KiB/s: 3 s; a new connection: 0.15 s + 0.1 s.
    const crawling = running(0, 96 * KiB, 32 * KiB);
    const steps = planTail([crawling], figures({ free: 2 }));
    assert.deepEqual(steps.map((s) => s.kind), ['copy']);
    assert.equal(steps[0]!.range, crawling);
    assert.equal(steps[0]!.kind === 'copy' && steps[0]!.from, crawling.pos);
    assert.deepEqual(planTail([crawling], figures({ free: 2, paired: (r) => r === crawling })), []);
    // 32 KiB/s for the 0.24 s the copy needs, plus a round trip: 12.6 KiB fetched twice at most.
    const risk = steps[0]!.kind === 'copy' ? steps[0]!.risk : 0;
    assert.ok(Math.abs(risk - 32 * KiB * (0.15 + (96 * KiB) / MiB + 0.15)) < 2, `risk ${risk}`);
    assert.deepEqual(planTail([crawling], figures({ free: 2, lossBudget: 12 * KiB })), [], 'not beyond the loss budget');
  });

  it('copies a range whose request has had no byte for many round trips', () => {
    const silent = liveRange({ start: 0, end: 4 * MiB - 1 });
    silent.askedAt = NOW - 5000;
    const others = [1, 2].map((i) => running(i * 8 * MiB, 512 * KiB, 1 * MiB));
    const steps = planTail([silent, ...others], figures());
    assert.equal(steps.length, 1);
    assert.equal(steps[0]!.range, silent);
    // It delivers nothing: it keeps no part of its range, a new connection takes all of it as a copy.
    assert.equal(steps[0]!.kind, 'copy');
  });

  it('neither splits nor copies while the process could not run for a tenth of the last second or more, or that is not known yet', () => {
    // The straggler and the silent range above, on a machine with CPU to spare, then starved.
    const slow = () => [...[0, 1, 2].map((i) => running(i * 8 * MiB, 1 * MiB, 1 * MiB)), running(32 * MiB, 1 * MiB, 256 * KiB)];
    const silent = (): LiveRange[] => {
      const r = liveRange({ start: 0, end: 4 * MiB - 1 });
      r.askedAt = NOW - 5000;
      return [r, ...[1, 2].map((i) => running(i * 8 * MiB, 512 * KiB, 1 * MiB))];
    };
    for (const ranges of [slow, silent]) {
      assert.equal(planTail(ranges(), figures({ lagShare: 0.05 })).length, 1);
      assert.deepEqual(planTail(ranges(), figures({ lagShare: 0.1 })), []);
      assert.deepEqual(planTail(ranges(), figures({ lagShare: 0.6 })), []);
      assert.deepEqual(planTail(ranges(), figures({ lagShare: undefined })), [], 'not known yet');
    }
  });

  it('goes on to the next straggler when the longest already has a copy, or is not worth one', () => {
    // A silent range with its copy running: nothing more to do for it, but the slow one still needs 8 s.
    const silent = liveRange({ start: 0, end: 4 * MiB - 1 });
    silent.askedAt = NOW - 5000;
    const slow = running(8 * MiB, 2 * MiB, 256 * KiB);
    const steps = planTail([silent, slow], figures({ free: 1, paired: (r) => r === silent }));
    assert.deepEqual(steps.map((s) => [s.kind, s.range]), [['split', slow]]);
    // On half the link or more, the others' times without the silent one decide who is a straggler.
    const busy = [0, 1, 2, 3, 4, 5, 6].map((i) => running((16 + i * 8) * MiB, 2 * MiB, 1 * MiB));
    assert.deepEqual(planTail([silent, slow, ...busy], figures({ free: 1, paired: (r) => r === silent })).map((s) => s.range), [slow]);
    // The longest too costly to copy (more than the budget at risk): the next, smaller one is copied.
    const big = running(64 * MiB, 192 * KiB, 32 * KiB);
    const small = running(72 * MiB, 96 * KiB, 32 * KiB);
    const copies = planTail([big, small], figures({ free: 1, lossBudget: 14 * KiB }));
    assert.deepEqual(copies.map((s) => [s.kind, s.range]), [['copy', small]]);
  });

  it('hands several free connections to the stragglers in turn, longest first, never a part smaller than 64 KiB', () => {
    const slow1 = running(0, 1 * MiB, 256 * KiB);
    const slow2 = running(8 * MiB, 2 * MiB, 256 * KiB);
    const fast = [1, 2].map((i) => running((16 + i * 8) * MiB, 256 * KiB, 1 * MiB));
    const steps = planTail([slow1, slow2, ...fast], figures({ free: 4 }));
    assert.deepEqual(steps.slice(0, 2).map((s) => s.range), [slow2, slow1], 'the 8 s range first, then the 4 s one');
    // Applied in order, as the transfer does (a copy: whichever copy ends first).
    const parts = new Set([slow1, slow2]);
    const copied = new Set<LiveRange>();
    for (const s of steps) {
      assert.ok(parts.has(s.range), JSON.stringify(s));
      if (s.kind === 'split') {
        s.range.end = s.rest.start - 1;
        parts.add(s.rest);
      } else copied.add(s.range);
    }
    // The parts cover each range once: no byte asked twice.
    for (const whole of [slow1, slow2]) {
      const mine = [...parts].filter((p) => p.start >= whole.start && p.start <= whole.start + 4 * MiB).sort((x, y) => x.pos - y.pos);
      for (let i = 1; i < mine.length; i++) assert.equal(mine[i]!.pos, mine[i - 1]!.end + 1, `parts ${JSON.stringify(mine)}`);
    }
    const onNew = (p: LiveRange): number => 0.15 + (p.end + 1 - p.pos) / MiB;
    const seconds = [...parts].map((p) => (p === slow1 || p === slow2 ? Math.min((p.end + 1 - p.pos) / (256 * KiB), copied.has(p) ? onNew(p) : Infinity) : onNew(p)));
    for (const p of parts) assert.ok(p.end + 1 - p.pos >= 64 * KiB);
    assert.ok(Math.max(...seconds) < 2.5, `the tail ends in ${Math.max(...seconds).toFixed(2)} s instead of 8: ${seconds.map((x) => x.toFixed(2)).join(', ')}`);
  });
});
