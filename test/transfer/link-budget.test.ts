import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { LinkBudget, SMALL_EXTRA_CONNECTIONS, overlapFor, type LinkGrant } from '../../lib/transfer/link-budget.ts';
import { LinkBudgets } from '../../lib/transfer/link-budgets.ts';
import { engineTransferStarter } from '../../lib/mirror/transfers.ts';
import { startTransfer } from '../../lib/transfer/transfer.ts';
import { loopLag, ownNow } from '../../lib/transfer/loop-lag.ts';
import { MiB, TEST_CONFIG, TEST_TIMING, rig, starve, type Rig } from './harness.ts';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('link budget shared by transfers', function () {
  this.timeout(30_000);

  it('never runs more connections than its limit, across shares', async () => {
    const link = new LinkBudget({ minConnections: 3, maxConnections: 3, adaptIntervalMs: 60_000 });
    const a = link.share();
    const b = link.share();
    const signal = new AbortController().signal;
    const releases: Array<() => void> = [];
    for (let i = 0; i < 4; i++) {
      void a.acquire(signal).then((r) => releases.push(r));
      void b.acquire(signal).then((r) => releases.push(r));
    }
    await tick();
    assert.equal(link.activeConnections, 3);
    assert.equal(releases.length, 3);
    releases.shift()?.();
    await tick();
    assert.equal(link.activeConnections, 3);
    assert.equal(releases.length, 3);
    assert.equal(link.waiting, 4);
    a.close();
    b.close();
  });

  /** Shares of a link of 2 connections, in this order, each asking `asks` connections; `release(n)` frees n connections in turn. */
  async function shares(read: Array<() => boolean>, asks = 3): Promise<{ order: string[]; release(n: number): Promise<void>; close(): void }> {
    const link = new LinkBudget({ minConnections: 2, maxConnections: 2, adaptIntervalMs: 60_000 });
    const all = read.map((r) => link.share(Infinity, r));
    const signal = new AbortController().signal;
    const order: string[] = [];
    const releases: Array<() => void> = [];
    // Each share asks in turn, after the one before was served what was free.
    for (const [k, share] of all.entries()) {
      const name = String.fromCharCode(97 + k);
      for (let i = 0; i < asks; i++) void share.acquire(signal).then((r) => { order.push(name); releases.push(r); });
      await tick();
    }
    return {
      order,
      async release(n) {
        for (let i = 0; i < n; i++) {
          releases.shift()?.();
          await tick();
        }
      },
      close() {
        for (const share of all) share.close();
      },
    };
  }

  it('hands free connections round-robin between shares clients read, so a second client is not stuck behind the first', async () => {
    const s = await shares([() => true, () => true]);
    await s.release(4);
    // a took both free connections before b asked; from then on they alternate.
    assert.deepEqual(s.order, ['a', 'a', 'b', 'a', 'b', 'b']);
    s.close();
  });

  it('hands a turn of a share of one image (a group) to the group\'s oldest share waiting: docker\'s three layers finish one after another, not together at the end', async () => {
    const link = new LinkBudget({ minConnections: 2, maxConnections: 2, adaptIntervalMs: 60_000 });
    // a, b: two layers of one image, both read by docker; c: another client's blob.
    const all = [link.share(Infinity, () => true, false, 'image 1'), link.share(Infinity, () => true, false, 'image 1'), link.share(Infinity, () => true)];
    const signal = new AbortController().signal;
    const order: string[] = [];
    const releases: Array<() => void> = [];
    for (const [k, share] of all.entries()) {
      for (let i = 0; i < 3; i++) void share.acquire(signal).then((r) => { order.push('abc'[k] as string); releases.push(r); });
      await tick();
    }
    for (let i = 0; i < 6; i++) {
      releases.shift()?.();
      await tick();
    }
    // b's turns went to a until a had nothing waiting; c kept its turns.
    assert.deepEqual(order, ['a', 'a', 'a', 'c', 'b', 'c', 'b', 'c']);
    for (const share of all) share.close();
  });

  it('hands free connections to a share a client reads before one nobody reads yet (a prefetch)', async () => {
    let bRead = false;
    const s = await shares([() => false, () => bRead], 4);
    await s.release(1);
    // Nobody reads either: the older goes first.
    assert.deepEqual(s.order, ['a', 'a', 'a']);
    bRead = true;
    await s.release(5);
    assert.deepEqual(s.order, ['a', 'a', 'a', 'b', 'b', 'b', 'b', 'a'], 'b, read by a client, took every connection freed while it waited');
    s.close();
  });

  it('hands free connections to the oldest share nobody reads: prefetched blobs finish in the order they started, not all together', async () => {
    const s = await shares([() => false, () => false, () => false], 2);
    await s.release(4);
    assert.deepEqual(s.order, ['a', 'a', 'b', 'b', 'c', 'c']);
    s.close();
  });

  it('grants a small blob\'s request at once, beyond the limit while every connection carries a big one, up to SMALL_EXTRA_CONNECTIONS more', async () => {
    const link = new LinkBudget({ minConnections: 2, maxConnections: 2, adaptIntervalMs: 60_000 });
    const big = link.share(Infinity, () => true);
    const signal = new AbortController().signal;
    const granted: string[] = [];
    for (let i = 0; i < 4; i++) void big.acquire(signal).then(() => granted.push('big'));
    await tick();
    const smalls = Array.from({ length: SMALL_EXTRA_CONNECTIONS + 1 }, () => link.share(Infinity, () => false, true));
    for (const [i, s] of smalls.entries()) void s.acquire(signal).then(() => granted.push(`small ${i}`));
    await tick();
    assert.deepEqual(granted, ['big', 'big', ...smalls.slice(0, SMALL_EXTRA_CONNECTIONS).map((_, i) => `small ${i}`)], 'the small blobs did not wait for the big one\'s connections');
    assert.equal(link.activeConnections, 2 + SMALL_EXTRA_CONNECTIONS);
    big.close();
    for (const s of smalls) s.close();
  });

  it('gives the oldest prefetch the first connections though a younger one asked first, while the older is still opening', async () => {
    const link = new LinkBudget({ minConnections: 2, maxConnections: 2, adaptIntervalMs: 60_000 });
    const older = link.share();
    const younger = link.share();
    const signal = new AbortController().signal;
    const order: string[] = [];
    for (let i = 0; i < 2; i++) void younger.acquire(signal).then(() => order.push('younger'));
    await tick();
    assert.equal(order.length, 0, 'the younger took the connections while the older opened its partial blob');
    for (let i = 0; i < 2; i++) void older.acquire(signal).then(() => order.push('older'));
    await tick();
    assert.deepEqual(order, ['older', 'older']);
    // A share that never asks holds the others back only for a moment.
    const idle = new LinkBudget({ minConnections: 1, maxConnections: 1, adaptIntervalMs: 60_000 });
    const silent = idle.share();
    const asking = idle.share();
    const granted = asking.acquire(signal);
    await granted;
    older.close();
    younger.close();
    silent.close();
    asking.close();
  });

  it('doubles after half an interval in slow start, so a fresh link is not held at its floor for a whole one', async () => {
    // Long enough that a loaded machine's timer lag (1 s of slack) cannot blur half an interval and a whole one.
    const interval = 4000;
    const link = new LinkBudget({ minConnections: 2, maxConnections: 8, adaptIntervalMs: interval });
    const a = link.share();
    const signal = new AbortController().signal;
    // Nothing answers (a byte would make it leap at once: the next test).
    for (let i = 0; i < 8; i++) a.acquire(signal).catch(() => {});
    const started = performance.now();
    while (link.limit === 2) await new Promise((r) => setTimeout(r, 20));
    const first = performance.now() - started;
    // Old code: its first doubling came after the whole interval (4 s); now after half (2 s).
    assert.ok(first < interval * 0.75, `slow start first doubled after ${Math.round(first)} ms with ticks every ${interval} ms`);
    assert.equal(link.limit, 4);
    a.close();
  });

  it('leaps in slow start as soon as the link answered (its two unjudged doublings at once), not half an interval after its first request', async () => {
    const interval = 4000;
    const link = new LinkBudget({ minConnections: 2, maxConnections: 16, adaptIntervalMs: interval });
    const a = link.share();
    const signal = new AbortController().signal;
    setMaxListeners(16, signal);
    for (let i = 0; i < 16; i++) a.acquire(signal).catch(() => {});
    const started = performance.now();
    // The first bytes come a round trip later.
    setTimeout(() => a.record(16 * 1024), 100);
    while (link.limit === 2) await new Promise((r) => setTimeout(r, 20));
    const first = performance.now() - started;
    // Half an interval is 2 s: old code doubled only then.
    assert.ok(first < 1000, `slow start first doubled after ${Math.round(first)} ms, its first bytes came after 100 ms`);
    // 2 -> 8: before, 2 -> 4 here and 4 -> 8 at the next tick, unjudged both.
    assert.equal(link.limit, 8);
    a.close();
  });

  it('times a tick\'s goodput on the process\'s own time: a tick that runs late because the process ran nothing does not read low', async () => {
    // As the running attempts of a transfer hold it (range-fetcher.ts): the lag is seen.
    const release = loopLag.hold();
    const rates: number[] = [];
    const link = new LinkBudget({
      minConnections: 2, maxConnections: 2, adaptIntervalMs: 1000,
      learned: { connections: 2, slowStart: false, rate: 0 }, onLearned: (l) => rates.push(l.rate),
    });
    const a = link.share();
    const signal = new AbortController().signal;
    try {
      for (let i = 0; i < 2; i++) a.acquire(signal).catch(() => {});
      await tick();
      // 100 KiB read every 50 ms; 600 ms in, the process runs nothing for 1 s, past the tick's time:
      // the tick runs late, before what the link sent meanwhile is read.
      const started = performance.now();
      // The rate read before the pause, on the process's own time too (a loaded machine's lag counts nowhere).
      const ownStart = ownNow();
      let before: number | undefined;
      let bytes = 0;
      while (rates.length === 0 && performance.now() - started < 5000) {
        a.record(100 * 1024);
        bytes += 100 * 1024;
        if (before === undefined && performance.now() - started > 600) {
          before = (bytes * 1000) / (ownNow() - ownStart);
          starve(1000);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(before !== undefined && rates.length > 0, 'no tick');
      assert.ok(rates[0]! >= 0.75 * before && rates[0]! <= 1.25 * before, `the tick read ${Math.round(rates[0]! / 1024)} KiB/s, ${Math.round(before / 1024)} KiB/s were read before the pause`);
    } finally {
      a.close();
      release();
    }
  });

  it('hands a connection whose request is ending to the next request, within overlapFor(limit) such requests at once', async () => {
    const limit = 8;
    const link = new LinkBudget({ minConnections: limit, maxConnections: limit, adaptIntervalMs: 60_000 });
    const a = link.share();
    const signal = new AbortController().signal;
    setMaxListeners(0, signal);
    const grants: LinkGrant[] = [];
    for (let i = 0; i < 20; i++) void a.acquire(signal).then((g) => grants.push(g));
    await tick();
    assert.equal(grants.length, limit);
    const allowed = overlapFor(limit);
    assert.ok(allowed >= 1 && allowed < limit);
    // Every running request says it ends within a round trip: only `allowed` of them hand their connection on.
    const said = grants.slice(0, limit).map((g) => g.ending());
    await tick();
    assert.deepEqual(said, [...Array<boolean>(allowed).fill(true), ...Array<boolean>(limit - allowed).fill(false)]);
    assert.equal(grants.length, limit + allowed, 'the next requests were granted while the ending ones still ran');
    assert.equal(link.activeConnections, limit);
    assert.equal(link.overlappingConnections, allowed);
    // Saying it again changes nothing; an ending request that is over frees no connection (it gave its own already), only room to overlap.
    assert.equal(grants[0]!.ending(), true);
    grants[0]!();
    await tick();
    assert.equal(grants.length, limit + allowed);
    assert.equal(link.overlappingConnections, allowed - 1);
    assert.equal(grants[allowed]!.ending(), true, 'room to overlap again once an ending request is over');
    await tick();
    assert.equal(grants.length, limit + allowed + 1);
    // A request that ends without having said so frees its connection as before.
    grants[limit]!();
    await tick();
    assert.equal(grants.length, limit + allowed + 2);
    assert.equal(link.activeConnections, limit);
    a.close();
    // A narrow link (fewer than 4 connections) keeps one request per connection.
    const narrow = new LinkBudget({ minConnections: 1, maxConnections: 1, adaptIntervalMs: 60_000 });
    const n = narrow.share();
    const first = await n.acquire(signal);
    let second = false;
    void n.acquire(signal).then(() => { second = true; }, () => {});
    assert.equal(first.ending(), false);
    await tick();
    assert.equal(second, false, 'maxConnections 1 is one connection');
    n.close();
  });

  it('counts an ending request that goes on after all (its retry after a reset) again, and grants nothing new until it drains (found in review)', async () => {
    const limit = 4;
    const link = new LinkBudget({ minConnections: limit, maxConnections: limit, adaptIntervalMs: 60_000 });
    const a = link.share();
    const signal = new AbortController().signal;
    setMaxListeners(0, signal);
    const grants: LinkGrant[] = [];
    for (let i = 0; i < 10; i++) void a.acquire(signal).then((g) => grants.push(g));
    await tick();
    assert.equal(grants[0]!.ending(), true);
    await tick();
    assert.equal(grants.length, limit + 1, 'its connection went to the next request');
    // Reset in its last round trip: it retries, on a connection of the link again.
    grants[0]!.unending();
    assert.equal(link.activeConnections, limit + 1, 'counted again, past the limit for a moment');
    assert.equal(link.overlappingConnections, 0);
    grants[1]!();
    await tick();
    assert.equal(grants.length, limit + 1, 'nothing granted while the link is past its limit');
    grants[2]!();
    await tick();
    assert.equal(grants.length, limit + 2, 'granted again once back under it');
    // Its release now frees a connection (it holds one again); unending twice, or after its release, changes nothing.
    grants[0]!.unending();
    grants[0]!();
    grants[0]!.unending();
    await tick();
    assert.equal(grants.length, limit + 3);
    assert.equal(link.activeConnections, limit);
    a.close();
  });

  it('asks no request in another\'s last round trip past the upstream\'s connections (its agent\'s sockets) (found in review)', async () => {
    assert.equal(overlapFor(32), 8);
    assert.equal(overlapFor(32, 40), 8);
    assert.equal(overlapFor(32, 34), 2);
    assert.equal(overlapFor(32, 32), 0);
    const link = new LinkBudget({ minConnections: 8, maxConnections: 8, connections: 9, adaptIntervalMs: 60_000 });
    const a = link.share();
    const signal = new AbortController().signal;
    setMaxListeners(0, signal);
    const grants: LinkGrant[] = [];
    for (let i = 0; i < 12; i++) void a.acquire(signal).then((g) => grants.push(g));
    await tick();
    assert.deepEqual(grants.slice(0, 8).map((g) => g.ending()), [true, ...Array<boolean>(7).fill(false)]);
    a.close();
    // The budgets of upstreams give each link its upstream's connections.
    const budgets = new LinkBudgets({ minConnections: 8, maxConnections: 8 }, { connectionsFor: () => 8 });
    const b = budgets.get('upstream.example').share();
    const g = await b.acquire(signal);
    assert.equal(g.ending(), false, 'an upstream of 8 connections with transfers of 8 overlaps none');
    b.close();
    // Several relays: each has its own agent of `connections` sockets beside its own limit, so their sum (limitFrom) is not held to one agent's.
    const relays = new LinkBudgets({ minConnections: 8, maxConnections: 8 }, { connectionsFor: () => 8, capacityFor: () => () => 24 });
    const c = relays.get('relayed.example').share();
    const h = await c.acquire(signal);
    assert.equal(h.ending(), true, 'a link of several relays overlaps a quarter of their sum');
    c.close();
  });

  it('keeps a share within its own cap and lets a waiter leave when its signal aborts', async () => {
    const link = new LinkBudget({ minConnections: 8, maxConnections: 8, adaptIntervalMs: 60_000 });
    const a = link.share(2);
    const ctrl = new AbortController();
    let granted = 0;
    const rejected: unknown[] = [];
    for (let i = 0; i < 4; i++) a.acquire(ctrl.signal).then(() => granted++, (e: unknown) => rejected.push(e));
    await tick();
    assert.equal(granted, 2);
    assert.equal(link.waiting, 0, 'waiters held back by their own cap do not ask the link for more');
    ctrl.abort(new Error('gone'));
    await tick();
    assert.equal(rejected.length, 2);
    assert.equal(a.queue.length, 0);
    a.close();
  });

  describe('with real transfers', () => {
    let rigs: Rig[] = [];
    afterEach(async () => {
      await Promise.all(rigs.map((r) => r.close()));
      rigs = [];
    });

    it('serves a blob a client waits for before a prefetch from the request on, not only once its first byte came', async () => {
      // One connection: the prefetch, started first, holds it; the blob the client asked for must get every connection freed after.
      rigs = [await rig(1 * MiB, { faults: { rateBytesPerSec: 4 * MiB }, seed: 5 }), await rig(1 * MiB, { faults: { rateBytesPerSec: 4 * MiB }, seed: 6 })];
      const link = new LinkBudget({ minConnections: 1, maxConnections: 1, adaptIntervalMs: 60_000 });
      const [prefetch, asked] = rigs.map((r) => r.start({ link }));
      const stopWaiting = asked!.clientWaits();
      const ended: string[] = [];
      await Promise.all([prefetch!.done.then(() => ended.push('prefetch')), asked!.done.then(() => ended.push('asked'))]);
      stopWaiting();
      assert.deepEqual(ended, ['asked', 'prefetch']);
    });

    it('fetches the blobs of one image a client reads in the image\'s order: the second gets no connection before the first has every byte (engineTransferStarter passes the group)', async () => {
      rigs = [await rig(1 * MiB, { faults: { rateBytesPerSec: 8 * MiB }, seed: 8 }), await rig(1 * MiB, { faults: { rateBytesPerSec: 8 * MiB }, seed: 9 })];
      const link = new LinkBudget({ minConnections: 1, maxConnections: 1, adaptIntervalMs: 60_000 });
      const start = engineTransferStarter(TEST_CONFIG, { linkBudget: () => link });
      const [first, second] = rigs.map((r, i) => start({
        digest: r.digest, size: r.data.length, source: r.source, partials: r.store.partials, label: `layer ${i}`, upstream: 'hub', group: 'image',
        afterCommit: async () => {},
      }));
      const waits = [first!.clientWaits!(), second!.clientWaits!()];
      let firstHad = -1;
      await Promise.all([first!.done, second!.firstByte!.then(() => { firstHad = first!.snapshot().bytesDone; }), second!.done]);
      for (const stop of waits) stop();
      assert.equal(firstHad, rigs[0]!.data.length, 'the first blob had every byte when the second got its first');
    });

    it('spreads a blob that starts on a busy link over the connections it may use, not over the one free then', async () => {
      rigs = [await rig(1 * MiB, { seed: 7 })];
      const link = new LinkBudget({ minConnections: 2, maxConnections: 2, adaptIntervalMs: 60_000 });
      // Another transfer holds every connection when this one plans its requests.
      const other = link.share();
      const signal = new AbortController().signal;
      const held = await Promise.all([other.acquire(signal), other.acquire(signal)]);
      const t = rigs[0]!.start({ link });
      setTimeout(() => held.forEach((release) => release()), 50);
      await t.done;
      other.close();
      // transfer.maxConnections 8: eight requests of 128 KiB (planned for one free connection: four of a 256 KiB chunk).
      assert.ok(rigs[0]!.server.stats.rangeRequests >= 8, `${rigs[0]!.server.stats.rangeRequests} requests`);
    });

    it('adapts the total over concurrent transfers: they share the connections instead of each taking its own', async () => {
      const perConnection = 2 * MiB;
      rigs = [await rig(4 * MiB, { faults: { rateBytesPerSec: perConnection }, seed: 3 }), await rig(4 * MiB, { faults: { rateBytesPerSec: perConnection }, seed: 4 })];
      const link = new LinkBudget({ minConnections: 2, maxConnections: 6, adaptIntervalMs: TEST_TIMING.adaptIntervalMs! });
      let most = 0;
      const sampler = setInterval(() => { most = Math.max(most, link.activeConnections); }, 5);
      const transfers = rigs.map((r) => startTransfer({
        digest: r.digest, size: r.data.length, source: r.source, partials: r.store.partials, link,
        config: { ...TEST_CONFIG, maxConnections: 6 }, ...TEST_TIMING,
      }));
      const results = await Promise.all(transfers.map((t) => t.done));
      clearInterval(sampler);
      for (const [i, res] of results.entries()) assert.equal(res.size, rigs[i]!.data.length);
      assert.ok(most <= 6, `${most} connections at once over a link capped at 6`);
      assert.ok(most > 2, `the link never grew past its floor (${most})`);
      assert.ok(link.limit > 2, 'the learned concurrency stays with the link for the next transfer');
    });
  });
});
