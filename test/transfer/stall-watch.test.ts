/** Issue 12 point 2: stalls told from what the link does, not a fixed timer. */
import assert from 'node:assert/strict';
import { StallError } from '../../lib/transfer/errors.ts';
import { StallWatch } from '../../lib/transfer/stall-watch.ts';
import { MiB, TEST_CONFIG, rig, type Rig } from './harness.ts';

describe('stall watch', function () {
  this.timeout(20_000);

  it('cuts a connection silent for some round trips and gaps while a peer delivers, and only then', () => {
    let now = 0;
    const watch = new StallWatch(() => now);
    const cuts: string[] = [];
    const a = watch.start((e) => cuts.push(`a ${e instanceof StallError}`));
    const b = watch.start(() => cuts.push('b'));
    now = 200;
    a.gotHeaders();
    b.gotHeaders();
    for (let i = 0; i < 10; i++) {
      now += 50;
      a.gotBytes();
      b.gotBytes();
    }
    assert.equal(watch.rtt, 200);
    // a goes quiet; b keeps delivering. 4 x RTT = 800 ms < the 1 s floor.
    for (let t = 0; t < 900; t += 50) {
      now += 50;
      b.gotBytes();
      watch.check();
    }
    assert.deepEqual(cuts, [], 'cut before the floor');
    for (let t = 0; t < 200; t += 50) {
      now += 50;
      b.gotBytes();
      watch.check();
    }
    assert.deepEqual(cuts, ['a true']);
    a.end();
    b.end();
  });

  it('judges the connection that delivered last on its own rhythm, allowed twice the silence', () => {
    let now = 0;
    const watch = new StallWatch(() => now);
    const cuts: string[] = [];
    const a = watch.start(() => cuts.push('a'));
    const b = watch.start(() => cuts.push('b'));
    now = 100;
    a.gotHeaders();
    b.gotHeaders();
    a.gotBytes();
    now = 150;
    b.gotBytes();
    // A connection that never delivered has no rhythm: alone, only the fixed timer judges it.
    const c = watch.start(() => cuts.push('c'));
    // Both quiet: b's bytes came after a's, so a is cut at 1 s; b, which nobody delivered after,
    // only at twice that.
    now = 1200;
    watch.check();
    assert.deepEqual(cuts, ['a']);
    now = 2100;
    watch.check();
    assert.deepEqual(cuts, ['a']);
    now = 2200;
    watch.check();
    assert.deepEqual(cuts, ['a', 'b']);
    b.end();
    a.end();
    now = 60_000;
    watch.check();
    assert.deepEqual(cuts, ['a', 'b']);
    c.end();
  });

  describe('in a transfer', () => {
    let r: Rig | undefined;
    afterEach(async () => {
      await r?.close();
      r = undefined;
    });

    it('a stall longer than stallSeconds costs little: connections that stall for good are cut while others deliver', async () => {
      const size = 8 * MiB;
      r = await rig(size, { faults: { rateBytesPerSec: 4 * MiB, stallMeanBytes: 2 * MiB }, seed: 9 });
      // stallSeconds past the test's timeout: only the stall watch can finish this transfer.
      const t = r.start({ config: { ...TEST_CONFIG, stallSeconds: 60 } });
      const result = await t.done;
      assert.equal(result.size, size);
      assert.ok(r.proxy.stats.stalls >= 1, 'nothing stalled: the test shows nothing');
      const s = t.snapshot();
      assert.ok(s.retries >= r.proxy.stats.stalls - s.activeConnections, `${s.retries} retries for ${r.proxy.stats.stalls} stalls`);
      // Cut connections resume where they stopped: almost nothing crosses twice.
      assert.ok(s.bytesFetched <= size * 1.02, `fetched ${s.bytesFetched} for ${size}`);
    });
  });
});
