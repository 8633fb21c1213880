/**
 * lib/cluster/cluster-partials.ts: two replicas, leases and progress on a real RGW, the partial
 * blobs in one shared store (the filesystem backend in a temp dir, standing in for the bucket
 * until the S3 backend writes partial blobs): one holder per digest, a follower streaming what
 * the holder records, a takeover from what a dead holder left; and on the S3 backend's partial
 * blobs, a holder that lost its lease leaving the bucket to the replica that took over.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ClusterPartialBlobs, TransferElsewhereError } from '../../lib/cluster/cluster-partials.ts';
import { createFollowReader } from '../../lib/cluster/follow-reader.ts';
import { Leases, type HeldLease } from '../../lib/cluster/lease.ts';
import type { ClusterObjects } from '../../lib/cluster/objects.ts';
import { TransferGate, type TransferClaim } from '../../lib/cluster/transfer-gate.ts';
import { sweepProgress } from '../../lib/cluster/progress.ts';
import type { PartialBlob, PartialBlobStorage } from '../../lib/storage/partial-blobs.ts';
import { S3Storage } from '../../lib/storage/s3/storage.ts';
import { openStore } from '../../lib/storage/store.ts';
import { useRgw } from '../helpers/ceph.ts';
import { waitFor } from '../helpers/processes.ts';
import { accessOf, AnswerLosingObjects, clusterObjects, GatedObjects, type S3Access } from './cluster-bucket.ts';

const PIECE = 128 * 1024;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** What the engine does with a partial blob: write and record each piece not held, then commit. */
async function fill(blob: Buffer, partial: PartialBlob, opts: { pieces?: number; delayMs?: number } = {}): Promise<number[]> {
  const held = partial.resumed;
  const written: number[] = [];
  for (let at = 0; at < blob.length; at += PIECE) {
    const end = Math.min(blob.length, at + PIECE) - 1;
    if (held.some((r) => r.start <= at && r.end >= end)) continue;
    if (opts.pieces !== undefined && written.length >= opts.pieces) return written;
    await partial.write(at, blob.subarray(at, end + 1));
    await partial.record({ start: at, end });
    // As a transfer with piece digests does: each checked piece of the prefix is released to readers.
    partial.release?.(end + 1);
    written.push(at);
    if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
  }
  await partial.commit(sha(blob));
  return written;
}

describe('single flight across replicas through the partial blobs (lib/cluster/cluster-partials.ts)', function () {
  this.timeout(30_000);
  const rgw = useRgw();
  let access: S3Access;
  let objects: ClusterObjects;
  let dir: string;
  let shared: PartialBlobStorage;

  before(async () => {
    access = accessOf(rgw(), await rgw().createBucket());
    objects = clusterObjects(access);
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-cluster-partials-'));
    shared = (await openStore(dir)).partials;
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const replica = (id: string, o: ClusterObjects = objects, ttlMs = 5000, keepDoneMs = 5000): ClusterPartialBlobs =>
    new ClusterPartialBlobs(shared, new TransferGate(o, new Leases(o, id, { ttlMs }), { minPollMs: 30, maxPollMs: 100, checkLeaseAfterMs: 200 }), 50, undefined, keepDoneMs);

  it('opens a digest for one replica only; the other follows what the holder records and releases, and gets the blob once committed', async () => {
    const blob = randomBytes(PIECE * 6 + 77);
    const r1 = replica('r1');
    const r2 = replica('r2');
    const partial = await r1.open(sha(blob), blob.length);
    const elsewhere = await r2.open(sha(blob), blob.length).then(() => undefined, (e: unknown) => e);
    assert.ok(elsewhere instanceof TransferElsewhereError, String(elsewhere));

    let during = 0;
    let filling = true;
    const reader = createFollowReader({
      watcher: elsewhere.watcher,
      start: 0,
      end: blob.length,
      readRange: (start, end) => r2.read(sha(blob), { start, end: end - 1 }),
    });
    reader.on('data', (c: Buffer) => {
      if (filling) during += c.length;
    });
    const got = drain(reader);
    await fill(blob, partial, { delayMs: 60 });
    filling = false;
    await partial.close();
    assert.ok(during >= 3 * PIECE, `${during} bytes served while the holder filled`);
    assert.ok((await got).equals(blob));
    // Committed and released: the next open is a holder again (the caller checks the blob first).
    const again = await r2.open(sha(blob), blob.length);
    await again.close();
  });

  it('lets a follower take over a transfer whose holder died and continue from what it recorded', async () => {
    const blob = randomBytes(PIECE * 8);
    const ttlMs = 1000;
    const dyingObjects = new GatedObjects(access);
    const r1 = replica('dying', dyingObjects, ttlMs);
    const r2 = replica('survivor', objects, ttlMs);
    const partial = await r1.open(sha(blob), blob.length);
    const elsewhere = await r2.open(sha(blob), blob.length).then(() => undefined, (e: unknown) => e);
    assert.ok(elsewhere instanceof TransferElsewhereError);
    assert.deepEqual(await fill(blob, partial, { pieces: 3 }), [0, 1, 2].map((i) => i * PIECE));
    await partial.flush();
    dyingObjects.close(); // dies: its renewals and progress no longer reach the bucket

    let successor: Promise<number[]> | undefined;
    const reader = createFollowReader({
      watcher: elsewhere.watcher,
      start: 0,
      end: blob.length,
      readRange: (start, end) => r2.read(sha(blob), { start, end: end - 1 }),
      async onOrphaned() {
        const mine = await r2.open(sha(blob), blob.length);
        successor = fill(blob, mine).finally(() => mine.close());
      },
    });
    const got = await drain(reader);
    assert.ok(got.equals(blob));
    assert.deepEqual(await successor, [3, 4, 5, 6, 7].map((i) => i * PIECE), 'the successor wrote only what the dead holder had not');
    await assert.rejects(partial.write(0, blob.subarray(0, 1)), { name: 'LeaseLostError' });
    await partial.close();
  });

  it('holds a holder\'s writes back while its lease\'s renewal is late, and goes on once it lands: no takeover, nothing fetched again', async () => {
    const blob = randomBytes(PIECE * 4);
    const slowObjects = new GatedObjects(access);
    const r1 = replica('slow-store', slowObjects, 2000);
    const partial = await r1.open(sha(blob), blob.length);
    await fill(blob, partial, { pieces: 2 });
    // Its renewals (and progress) reach the bucket late: past the lease's deadline (ttl - margin =
    // 1.6 s after the last renewal sent), nobody took it; the renewal lands within another ttl.
    const open = slowObjects.close();
    await new Promise((r) => setTimeout(r, 1700));
    let wrote = false;
    const writing = partial.write(2 * PIECE, blob.subarray(2 * PIECE, 3 * PIECE)).then(() => (wrote = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(wrote, false, 'a write waits while the renewal is late');
    open();
    await writing;
    await partial.record({ start: 2 * PIECE, end: 3 * PIECE - 1 });
    await partial.write(3 * PIECE, blob.subarray(3 * PIECE));
    await partial.record({ start: 3 * PIECE, end: blob.length - 1 });
    await partial.commit(sha(blob));
    await partial.close();
    assert.deepEqual(await drain(await shared.read(sha(blob), { start: 0, end: blob.length - 1 })), blob);
  });

  it('leaves the store to the replica that took the transfer over: a holder that lost its lease writes and removes nothing', async () => {
    const blob = randomBytes(PIECE * 8);
    const ttlMs = 1000;
    // The S3 backend's partial blobs, one store for each replica on one bucket.
    const data = rgw().bucket(access.bucket, 'lost-lease/');
    const dyingObjects = new GatedObjects(access);
    const r1 = new ClusterPartialBlobs(new S3Storage(data).partials, new TransferGate(dyingObjects, new Leases(dyingObjects, 'paused', { ttlMs })), 50);
    const r2 = new ClusterPartialBlobs(new S3Storage(data).partials, new TransferGate(objects, new Leases(objects, 'successor', { ttlMs })), 50);
    const partial = await r1.open(sha(blob), blob.length);
    await fill(blob, partial, { pieces: 3 });
    await partial.flush();
    dyingObjects.close(); // paused: its renewals no longer reach the bucket
    await waitFor(() => partial.write(0, blob.subarray(0, 1)).then(() => false, () => true), 10_000, 'the paused holder\'s lease lost');
    let successor: PartialBlob | undefined;
    await waitFor(async () => (successor = await r2.open(sha(blob), blob.length).catch(() => undefined)) !== undefined, 10_000, 'the transfer taken over');
    assert.deepEqual(successor!.resumed, [{ start: 0, end: 3 * PIECE - 1 }]);
    // The old holder gives up on content it thinks wrong: the bucket is the successor's now.
    await partial.discard();
    assert.deepEqual(await fill(blob, successor!), [3, 4, 5, 6, 7].map((i) => i * PIECE));
    await successor!.close();
    assert.deepEqual(await new S3Storage(data).blobs.readBytes(sha(blob)), blob);
  });

  it('ends a partial blob by the lease\'s verdict, as its commit does (ours()): a renewal merely late keeps it for close and discard, a lost lease abandons it', async () => {
    const ttlMs = 2000;
    // The inner partial blobs, each end recorded: close and discard keep the store this replica's, abandon leaves it to a successor.
    const store = (await openStore(path.join(dir, 'ours'))).partials;
    const ends: string[] = [];
    const open = store.open.bind(store);
    store.open = async (digest, size) => {
      const b = await open(digest, size);
      const close = b.close.bind(b);
      const discard = b.discard.bind(b);
      // The end ClusterPartialBlob chose: the first (the fs store's discard closes too).
      let chosen: string | undefined;
      const choose = (what: string, run: () => Promise<void>) => (): Promise<void> => {
        if (chosen === undefined) ends.push((chosen = what));
        return run();
      };
      b.close = choose('close', close);
      b.discard = choose('discard', discard);
      b.abandon = choose('abandon', close);
      return b;
    };
    // The lease's writes can be held back (a renewal late, then lost); a progress write's answer
    // lost fails the transfer, whose partial blob then ends at once, whatever the lease says then.
    const leaseObjects = new GatedObjects(access);
    const progressObjects = new AnswerLosingObjects(access);
    const held: HeldLease[] = [];
    const gate = new (class extends TransferGate {
      override async claim<Parts = unknown>(digest: string): Promise<TransferClaim<Parts>> {
        const claim = await super.claim<Parts>(digest);
        if (claim.role === 'holder') held.push(claim.lease);
        return claim;
      }
    })(progressObjects, new Leases(leaseObjects, 'ours', { ttlMs }));
    const r = new ClusterPartialBlobs(store, gate, 50);

    const end = async (how: 'close' | 'discard', renewal: 'late' | 'lost'): Promise<string[]> => {
      ends.length = 0;
      const blob = randomBytes(PIECE * 3);
      const partial = await r.open(sha(blob), blob.length);
      const lease = held.at(-1)!;
      await fill(blob, partial, { pieces: 2 });
      await partial.flush();
      progressObjects.loseNext = true;
      await assert.rejects(partial.flush(), /answer was lost/);
      const reopen = leaseObjects.close();
      await waitFor(() => !lease.valid, 10_000, 'the renewal late');
      if (renewal === 'lost') await lease.untilValid().then(() => assert.fail('the lease was renewed'), () => {});
      const ending = partial[how]();
      // The renewal lands only after the end asked for the verdict (a response is I/O: the end's
      // microtasks run first), so a verdict taken from `valid` at that moment would be 'lost'.
      reopen();
      await ending;
      return [...ends];
    };
    assert.deepEqual(await end('close', 'late'), ['close']);
    assert.deepEqual(await end('discard', 'late'), ['discard']);
    assert.deepEqual(await end('close', 'lost'), ['abandon']);
    assert.deepEqual(await end('discard', 'lost'), ['abandon']);
  });

  it('removes a transfer\'s progress after its commit, and sweeps what holders left: done, or unfinished with nothing to continue from', async () => {
    const progressOf = async (digest: string): Promise<string | undefined> => (await objects.get(`progress/${digest}`))?.body.toString();
    // Removed by its holder once followers had time to see done.
    const blob = randomBytes(PIECE * 2 + 5);
    const r1 = replica('p1', objects, 5000, 300);
    await fill(blob, await r1.open(sha(blob), blob.length));
    assert.match((await progressOf(sha(blob))) ?? '', /"done":true/);
    await waitFor(async () => (await progressOf(sha(blob))) === undefined, 5000, 'the progress removed');
    assert.deepEqual(await drain(await replica('p2').read(sha(blob), { start: 0, end: blob.length - 1 })), blob);

    // Left behind: a done record (its holder gone before removing it), a transfer abandoned with
    // its bytes gone, and one still held (kept: its holder writes it).
    const keeper = replica('p3', objects, 5000, 3600_000);
    const done = randomBytes(PIECE + 1);
    await fill(done, await keeper.open(sha(done), done.length));
    const abandoned = randomBytes(PIECE * 2);
    const dropped = await keeper.open(sha(abandoned), abandoned.length);
    await fill(abandoned, dropped, { pieces: 1 });
    await dropped.discard();
    const running = randomBytes(PIECE * 2);
    const held = await keeper.open(sha(running), running.length);
    await fill(running, held, { pieces: 1 });
    await held.flush();
    const leases = new Leases(objects, 'sweeper');
    const removed = await sweepProgress(objects, leases, { doneAgeMs: 0, resumable: (d) => shared.has(d) });
    // (Earlier tests' records may go too: this bucket is theirs as well.)
    assert.deepEqual([sha(done), sha(abandoned), sha(running)].map((d) => removed.includes(d)), [true, true, false]);
    assert.equal(await progressOf(sha(done)), undefined);
    assert.equal(await progressOf(sha(abandoned)), undefined);
    assert.ok(await progressOf(sha(running)), 'the record of a held transfer was removed');
    await held.close();
  });
});
