/** lib/cluster/progress.ts and progress-watcher.ts against a real RGW: follow a transfer, take over an orphaned one. */
import assert from 'node:assert/strict';
import { Leases, type HeldLease } from '../../lib/cluster/lease.ts';
import { availableEnd, ProgressWatcher, TransferOrphanedError } from '../../lib/cluster/progress-watcher.ts';
import { TransferGate } from '../../lib/cluster/transfer-gate.ts';
import { ProgressWriter, TransferFencedError, transferLeaseName, type TransferProgress } from '../../lib/cluster/progress.ts';
import type { ClusterObjects } from '../../lib/cluster/objects.ts';
import { useRgw } from '../helpers/ceph.ts';
import { accessOf, clusterObjects, GatedObjects, type S3Access } from './cluster-bucket.ts';

const MiB = 1 << 20;

describe('transfer progress in the bucket (lib/cluster/progress.ts, progress-watcher.ts)', function () {
  this.timeout(30_000);
  const rgw = useRgw();
  let access: S3Access;
  let objects: ClusterObjects;

  before(async () => {
    access = accessOf(rgw(), await rgw().createBucket());
    objects = clusterObjects(access);
  });

  it('lets a follower serve each range as soon as the holder publishes it, and the whole blob once done', async () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const holder = new Leases(objects, 'holder');
    const lease = (await holder.tryTake(transferLeaseName(digest))) as HeldLease;
    const writer = await ProgressWriter.open<{ uploadId: string }>(objects, lease, digest);
    assert.equal(writer.previous, undefined);
    const watcher = new ProgressWatcher(objects, new Leases(objects, 'follower'), digest, { minPollMs: 50 });

    const first = watcher.until(0);
    await writer.publish({ size: 30 * MiB, ranges: [{ start: 0, end: 10 * MiB }], released: 10 * MiB, parts: { uploadId: 'u1' } });
    const p1 = await first;
    assert.equal(availableEnd(p1, 0), 10 * MiB);
    assert.deepEqual(p1.parts, { uploadId: 'u1' });
    assert.equal(p1.holder, 'holder');

    const got: { second?: TransferProgress } = {};
    const waiting = watcher.until(10 * MiB).then((p) => (got.second = p));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got.second, undefined, 'byte 10 MiB is not there yet');
    // Out of order: the range after a gap does not make the gap readable.
    await writer.publish({ size: 30 * MiB, ranges: [{ start: 0, end: 10 * MiB }, { start: 20 * MiB, end: 30 * MiB }], released: 10 * MiB });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got.second, undefined);
    await writer.publish({ size: 30 * MiB, ranges: [{ start: 0, end: 30 * MiB }], released: 30 * MiB - 1 });
    await waiting;
    assert.equal(availableEnd(await waiting, 10 * MiB), 30 * MiB - 1, 'all but the last byte before the digest is checked');

    const late: { p?: TransferProgress } = {};
    const lastByte = watcher.until(30 * MiB - 1).then((p) => (late.p = p));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(late.p, undefined, 'the last byte waits for done');
    await writer.publish({ size: 30 * MiB, ranges: [{ start: 0, end: 30 * MiB }], done: true });
    await lease.release();
    const last = await lastByte;
    assert.equal(last.done, true);
    assert.equal(availableEnd(last, 30 * MiB - 1), 30 * MiB);
  });

  it('tells a follower the transfer is orphaned once its holder stops renewing; the successor continues from the ranges there and fences the old holder out', async () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    const ttlMs = 1000;
    const gated = new GatedObjects(access);
    const dying = new Leases(gated, 'dying', { ttlMs });
    const lease = (await dying.tryTake(transferLeaseName(digest))) as HeldLease;
    const oldWriter = await ProgressWriter.open(gated, lease, digest);
    await oldWriter.publish({ size: 8 * MiB, ranges: [{ start: 0, end: 3 * MiB }], released: 3 * MiB });

    const follower = new Leases(objects, 'follower', { ttlMs });
    const watcher = new ProgressWatcher(objects, follower, digest, { minPollMs: 50, maxPollMs: 200, checkLeaseAfterMs: 200 });
    assert.equal(availableEnd(await watcher.until(0), 0), 3 * MiB);
    const open = gated.close(); // the holder's writes stop reaching RGW: it is as good as dead
    const stoppedAt = performance.now();
    const orphaned = await watcher.until(3 * MiB).then(() => undefined, (e: unknown) => e);
    const detectedMs = performance.now() - stoppedAt;
    assert.ok(orphaned instanceof TransferOrphanedError, String(orphaned));
    console.log(`      orphan detected ${Math.round(detectedMs)} ms after the holder's last write (ttl ${ttlMs} ms)`);
    // Not before the lease could have expired (the last renew was at most ttl/3 before the cut),
    // and soon after: ttl plus the lease check's delay and a few polls on a loaded machine.
    assert.ok(detectedMs >= ttlMs * 0.5 && detectedMs < ttlMs + 2000, `${detectedMs} ms`);

    const successor = (await follower.tryTake(transferLeaseName(digest))) as HeldLease;
    assert.ok(successor, 'the follower takes the expired lease');
    const writer = await ProgressWriter.open(objects, successor, digest);
    assert.deepEqual(writer.previous?.ranges, [{ start: 0, end: 3 * MiB }]);
    await writer.publish({ size: 8 * MiB, ranges: [...(writer.previous?.ranges ?? []), { start: 3 * MiB, end: 6 * MiB }], released: 6 * MiB });

    // The old holder comes back from its pause: its lease is gone and its progress cannot overwrite the successor's.
    assert.equal(lease.valid, false);
    open();
    await assert.rejects(oldWriter.publish({ size: 8 * MiB, ranges: [{ start: 0, end: 4 * MiB }] }), { name: 'LeaseLostError' });
    const seen = await new ProgressWatcher(objects, follower, digest).until(5 * MiB);
    assert.equal(seen.holder, 'follower');
    assert.equal(availableEnd(seen, 0), 6 * MiB);
    await successor.release();
  });

  it('glances at the lease each second while the progress moves, so a dead holder\'s ttl runs from its last renewal, not from when its progress stopped', async () => {
    const digest = `sha256:${'f'.repeat(64)}`;
    const lease = (await new Leases(objects, 'busy').tryTake(transferLeaseName(digest))) as HeldLease;
    const writer = await ProgressWriter.open(objects, lease, digest);
    // The watcher's clock is the test's: the looks are judged in its time, whatever the machine's load.
    let clock = 0;
    const looks: number[] = [];
    const follower = new (class extends Leases {
      override inspect(name: string, signal?: AbortSignal): ReturnType<Leases['inspect']> {
        looks.push(clock);
        return super.inspect(name, signal);
      }
    })(objects, 'follower');
    const watcher = new ProgressWatcher(objects, follower, digest, { now: () => clock }); // the defaults: leaseEveryMs and checkLeaseAfterMs 1 s
    // A holder publishing every 100 ms for 3.5 s: the progress never stops long enough for the
    // look of a stall (1 s), so every look is a glance, one a second from the first answer on.
    for (let i = 1; i <= 35; i++) {
      clock += 100;
      await writer.publish({ size: 64 * MiB, ranges: [{ start: 0, end: i * MiB }], released: i * MiB });
      await watcher.until((i - 1) * MiB);
    }
    assert.deepEqual(looks, [100, 1100, 2100, 3100]);
    await lease.release();
  });

  it('fences a writer out once another wrote the progress, even while its own lease still looks valid (a clock that ran slow)', async () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    const a = (await new Leases(objects, 'a').tryTake(transferLeaseName(digest))) as HeldLease;
    const b = (await new Leases(objects, 'b').tryTake('unrelated')) as HeldLease;
    const first = await ProgressWriter.open(objects, a, digest);
    await first.publish({ size: MiB, ranges: [{ start: 0, end: 100 }], released: 100 });
    const second = await ProgressWriter.open(objects, b, digest);
    await second.publish({ size: MiB, ranges: [{ start: 0, end: 200 }], released: 200 });
    assert.equal(a.valid, true);
    await assert.rejects(first.publish({ size: MiB, ranges: [{ start: 0, end: 300 }] }), TransferFencedError);
    const seen = await new ProgressWatcher(objects, new Leases(objects, 'c'), digest).until(0);
    assert.equal(availableEnd(seen, 0), 200);
    await a.release();
    await b.release();
  });

  it('makes one replica the holder of a digest and the other a follower; a follower claims again once the holder gives up unfinished', async () => {
    const digest = `sha256:${'d'.repeat(64)}`;
    const first = await new TransferGate(objects, new Leases(objects, 'r1')).claim(digest);
    const secondGate = new TransferGate(objects, new Leases(objects, 'r2'), { minPollMs: 50, checkLeaseAfterMs: 100 });
    const second = await secondGate.claim(digest);
    assert.equal(first.role, 'holder');
    assert.equal(second.role, 'follower');
    if (first.role !== 'holder' || second.role !== 'follower') return;
    await first.progress.publish({ size: 4 * MiB, ranges: [{ start: 0, end: MiB }], released: MiB });
    assert.equal(availableEnd(await second.watcher.until(0), 0), MiB);
    await first.lease.release(); // stopped unfinished (its process is shutting down)
    await assert.rejects(second.watcher.until(MiB), TransferOrphanedError);
    const again = await secondGate.claim(digest);
    assert.equal(again.role, 'holder');
    if (again.role !== 'holder') return;
    assert.deepEqual(again.progress.previous?.ranges, [{ start: 0, end: MiB }]);
    assert.equal(again.progress.previous?.holder, 'r1');
    await again.lease.release();
  });

  it('serves a follower only what the holder released: bytes in the bucket but not yet verified wait (a flipped byte never reaches its clients)', async () => {
    const digest = `sha256:${'e'.repeat(64)}`;
    const lease = (await new Leases(objects, 'holder').tryTake(transferLeaseName(digest))) as HeldLease;
    const writer = await ProgressWriter.open(objects, lease, digest);
    const watcher = new ProgressWatcher(objects, new Leases(objects, 'follower'), digest, { minPollMs: 50 });
    // A transfer without piece digests: every byte in the bucket, none verified.
    await writer.publish({ size: 8 * MiB, ranges: [{ start: 0, end: 8 * MiB }] });
    const got: { p?: TransferProgress } = {};
    const waiting = watcher.until(0).then((p) => (got.p = p));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got.p, undefined, 'nothing released: the follower waits');
    // With piece digests: the checked prefix.
    await writer.publish({ size: 8 * MiB, ranges: [{ start: 0, end: 8 * MiB }], released: 2 * MiB });
    assert.equal(availableEnd(await waiting, 0), 2 * MiB);
    assert.equal(availableEnd(await watcher.until(0), MiB), 2 * MiB);
    await writer.publish({ size: 8 * MiB, ranges: [{ start: 0, end: 8 * MiB }], done: true });
    assert.equal(availableEnd(await watcher.until(2 * MiB), 2 * MiB), 8 * MiB);
    await lease.release();
  });
});
