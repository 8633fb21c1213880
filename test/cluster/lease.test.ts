/** lib/cluster/lease.ts against a real RGW: one holder at a time, renewals, takeover, fencing. */
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { Leases, LeaseLostError, type HeldLease } from '../../lib/cluster/lease.ts';
import { waitFor } from '../helpers/processes.ts';
import type { ClusterObjects } from '../../lib/cluster/objects.ts';
import { useRgw } from '../helpers/ceph.ts';
import { accessOf, AnswerLosingObjects, clusterObjects, GatedObjects, type S3Access } from './cluster-bucket.ts';

interface Reply { id: number; ok: boolean; at: number; error?: string }

/** A replica's lease side in a worker thread (lease-worker.ts). */
class Racer {
  private next = 0;
  private readonly pending = new Map<number, (r: Reply) => void>();
  readonly ready: Promise<void>;

  constructor(readonly worker: Worker) {
    this.ready = new Promise((resolve) => {
      worker.on('message', (m: Reply & { ready?: boolean }) => {
        if (m.ready) return resolve();
        this.pending.get(m.id)?.(m);
        this.pending.delete(m.id);
      });
    });
  }

  static start(access: S3Access, holder: string): Racer {
    const url = new URL('./lease-worker.ts', import.meta.url).href;
    const code = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(url)}); })`;
    return new Racer(new Worker(code, { eval: true, workerData: { access: access, holder } }));
  }

  ask(op: 'tryTake' | 'take' | 'release', name: string, extra: { ttlMs?: number; pollMs?: number } = {}): Promise<Reply> {
    const id = ++this.next;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.worker.postMessage({ id, op, name, ...extra });
    });
  }
}

describe('leases on RGW (lib/cluster/lease.ts)', function () {
  this.timeout(60_000);
  const rgw = useRgw();
  let access: S3Access;
  let objects: ClusterObjects;
  const racers: Racer[] = [];

  before(async () => {
    access = accessOf(rgw(), await rgw().createBucket());
    objects = clusterObjects(access);
  });
  after(async () => {
    await Promise.all(racers.map((r) => r.worker.terminate()));
  });

  it('gives a lease to exactly one of 8 racing replicas, round after round, taken fresh or after a release', async () => {
    for (let i = 0; i < 8; i++) racers.push(Racer.start(access, `racer-${i}`));
    await Promise.all(racers.map((r) => r.ready));
    const winners = new Set<number>();
    let previous: { racer: Racer; name: string } | undefined;
    for (let round = 0; round < 20; round++) {
      // Even rounds race for a new name (If-None-Match: *), odd ones for the lease the last winner just released (If-Match).
      let name = `race-${round}`;
      if (previous && round % 2 === 1) {
        assert.equal((await previous.racer.ask('release', previous.name)).ok, true, `round ${round}: the winner still held its lease`);
        name = previous.name;
      }
      const replies = await Promise.all(racers.map((r) => r.ask('tryTake', name)));
      assert.deepEqual(replies.filter((r) => r.error), []);
      const won = replies.flatMap((r, i) => (r.ok ? [i] : []));
      assert.equal(won.length, 1, `round ${round}: winners ${won.join(',')}`);
      winners.add(won[0] as number);
      previous = { racer: racers[won[0] as number] as Racer, name };
    }
    assert.ok(winners.size >= 2, 'the race is real: more than one replica won some round');
  });

  it('keeps a lease renewed while its holder lives; a killed holder loses it within its ttl and one other replica takes it', async () => {
    const ttlMs = 1500;
    const [holder, ...others] = racers;
    assert.ok(holder && others.length === 7);
    assert.equal((await holder.ask('tryTake', 'kill', { ttlMs })).ok, true);
    const takes = others.map((r) => r.ask('take', 'kill', { ttlMs, pollMs: 100 }));
    const firstTake = Promise.race(takes);
    // Three ttls of renewals: nobody else gets it.
    const early = await Promise.race([firstTake, new Promise<'none'>((r) => setTimeout(() => r('none'), 3 * ttlMs))]);
    assert.equal(early, 'none');
    const killedAt = Date.now();
    await holder.worker.terminate();
    const taken = await firstTake;
    const takeoverMs = taken.at - killedAt;
    console.log(`      takeover ${takeoverMs} ms after the kill (ttl ${ttlMs} ms, poll 100 ms)`);
    // At most ttl after the holder's last renew (before the kill), plus a poll and a request or
    // two on a loaded machine.
    assert.ok(takeoverMs <= ttlMs + 1000, `taken over after ${takeoverMs} ms`);
    // Exactly one: the others still wait a few polls later.
    await new Promise((r) => setTimeout(r, 500));
    let settled = 0;
    for (const t of takes) void t.then(() => settled++);
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, 1);
    racers.splice(0, 1);
  });

  it('keeps the lease of a holder whose renewal is merely late: its writes wait, and go on once the renewal lands', async () => {
    const ttlMs = 1000;
    const gated = new GatedObjects(access);
    const lost: LeaseLostError[] = [];
    const a = new Leases(gated, 'late', { ttlMs }, (e) => lost.push(e));
    const held = (await a.tryTake('late')) as HeldLease;
    assert.ok(held?.valid);
    // A store slow to answer (or an event loop stalled): the renewal in flight lands past the deadline.
    const open = gated.close();
    await waitFor(() => !held.valid, 5000, 'the deadline passed');
    let resumed = false;
    const waiting = held.untilValid().then(() => (resumed = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(resumed, false, 'a write waits while the renewal is late');
    open();
    await waiting;
    assert.equal(held.valid, true);
    assert.deepEqual(lost, []);
    assert.equal(held.signal.aborted, false);
    assert.deepEqual(await new Leases(objects, 'observer').inspect('late').then((v) => [v.state, v.holder]), ['held', 'late']);
    await held.release();
  });

  it('keeps a lease whose renewal landed but whose answer was lost: the next renewal is no theft', async () => {
    const losing = new AnswerLosingObjects(access);
    const lost: LeaseLostError[] = [];
    const a = new Leases(losing, 'lossy', { ttlMs: 5000 }, (e) => lost.push(e));
    const held = (await a.tryTake('lossy')) as HeldLease;
    assert.ok(held?.valid);
    losing.loseNext = true;
    assert.equal(await held.renew(), false, 'the renewal whose answer was lost');
    assert.equal(await held.renew(), true, 'the next renewal found the lease still ours');
    assert.deepEqual(lost.map((e) => e.reason), []);
    assert.equal(held.signal.aborted, false);
    assert.deepEqual(await new Leases(objects, 'observer').inspect('lossy').then((v) => [v.state, v.holder]), ['held', 'lossy']);
    await held.release();
    assert.equal((await new Leases(objects, 'observer').inspect('lossy')).state, 'free');
  });

  it('stops a holder whose renewals do not get through before anyone may steal it; its late renew then fails the If-Match', async () => {
    const ttlMs = 1000;
    const gated = new GatedObjects(access);
    const lost: LeaseLostError[] = [];
    const a = new Leases(gated, 'A', { ttlMs }, (e) => lost.push(e));
    const b = new Leases(objects, 'B', { ttlMs });
    const held = (await a.tryTake('fence')) as HeldLease;
    assert.ok(held?.valid);
    const open = gated.close();
    // A stops writing once it is no longer valid (a renewal late past its deadline); it keeps the
    // lease until that renewal's verdict, which comes only once B took it.
    let stoppedAt: number | undefined;
    const sample = setInterval(() => (stoppedAt ??= held.valid ? undefined : performance.now()), 5);
    const stolen = await b.take('fence', { pollMs: 50 });
    const stolenAt = performance.now();
    clearInterval(sample);
    assert.ok(stoppedAt !== undefined && stoppedAt < stolenAt, 'A stopped before B took it');
    assert.equal(held.valid, false);
    // A's renew was held back (a partition); now it reaches RGW with the old etag.
    const before = gated.results.length;
    open();
    await waitFor(() => gated.results.length > before, 10_000, 'the held-back renew to reach RGW');
    assert.deepEqual(gated.results.slice(before), [undefined], 'the late renew got 412');
    await waitFor(() => held.signal.aborted, 10_000, 'A told its lease is lost');
    // stolen: the late renew's 412; expired: no verdict within another ttl (a slow take on a loaded machine).
    assert.deepEqual(lost.map((e) => e.reason).filter((r) => r !== 'stolen' && r !== 'expired'), []);
    assert.equal(lost.length, 1);
    assert.ok(held.signal.reason instanceof LeaseLostError);
    await assert.rejects(held.untilValid(), LeaseLostError);
    assert.equal(await held.renew(), false);
    const view = await b.inspect('fence');
    assert.equal(view.holder, 'B');
    assert.equal(await stolen.renew(), true);
    assert.equal(stolen.valid, true);
    await stolen.release();
    assert.equal((await a.inspect('fence')).state, 'free');
  });
});
