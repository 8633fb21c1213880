/** lib/cluster/follow-reader.ts against a real RGW: a follower streams a blob as another replica transfers it, and takes over when it dies. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { createFollowReader } from '../../lib/cluster/follow-reader.ts';
import { Leases } from '../../lib/cluster/lease.ts';
import type { ClusterObjects } from '../../lib/cluster/objects.ts';
import type { ProgressWriter } from '../../lib/cluster/progress.ts';
import { TransferGate } from '../../lib/cluster/transfer-gate.ts';
import type { S3Bucket } from '../../lib/storage/s3/bucket.ts';
import { RangeSet } from '../../lib/transfer/range-set.ts';
import { useRgw } from '../helpers/ceph.ts';
import { accessOf, clusterObjects, GatedObjects, type S3Access } from './cluster-bucket.ts';

const PIECE = 256 * 1024;

/**
 * A stand-in for the S3 partial-blob storage: the transfer's bytes as one object per piece,
 * `<digest>/<offset>`; a range is read piece by piece.
 */
class Pieces {
  constructor(private readonly bucket: S3Bucket, private readonly digest: string) {}

  async write(blob: Buffer, offset: number): Promise<void> {
    await this.bucket.put(`${this.digest}/${offset}`, blob.subarray(offset, Math.min(blob.length, offset + PIECE)));
  }

  async read(start: number, end: number): Promise<Readable> {
    const out = new PassThrough();
    void (async () => {
      for (let at = start; at < end;) {
        const piece = Math.floor(at / PIECE) * PIECE;
        const until = Math.min(end, piece + PIECE);
        const got = await this.bucket.get(`${this.digest}/${piece}`, { start: at - piece, end: until - piece - 1 });
        if (!got) throw new Error(`piece ${piece} missing`);
        for await (const c of got.body) if (!out.write(c)) await new Promise((r) => out.once('drain', r));
        at = until;
      }
      out.end();
    })().catch((e: unknown) => out.destroy(e as Error));
    return out;
  }
}

/** The holder's side: writes the pieces not yet there, publishing progress after each. */
async function transfer(blob: Buffer, pieces: Pieces, progress: ProgressWriter, opts: { stopAfter?: number; delayMs?: number } = {}): Promise<void> {
  const held = new RangeSet(progress.previous?.ranges ?? []);
  let written = 0;
  for (let offset = 0; offset < blob.length; offset += PIECE) {
    if (held.coveredEnd(offset) >= Math.min(blob.length, offset + PIECE)) continue;
    if (opts.stopAfter !== undefined && written++ >= opts.stopAfter) return;
    await pieces.write(blob, offset);
    held.add(offset, Math.min(blob.length, offset + PIECE));
    await progress.publish({ size: blob.length, ranges: held.intervals, released: held.coveredEnd(0) });
    if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
  }
  await progress.publish({ size: blob.length, ranges: held.intervals, done: true });
}

async function drain(stream: Readable): Promise<{ sha: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { sha: h.digest('hex'), bytes };
}

describe('following a transfer through the bucket (lib/cluster/follow-reader.ts)', function () {
  this.timeout(30_000);
  const rgw = useRgw();
  let objects: ClusterObjects;
  let access: S3Access;
  let piecesBucket: S3Bucket;

  before(async () => {
    const name = await rgw().createBucket();
    access = accessOf(rgw(), name);
    objects = clusterObjects(access);
    piecesBucket = rgw().bucket(name, 'pieces/');
  });

  it('streams the blob to a follower\'s client while the holder transfers it, the last byte once done', async () => {
    const blob = randomBytes(PIECE * 6 + 1234);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const pieces = new Pieces(piecesBucket, digest);
    const holder = await new TransferGate(objects, new Leases(objects, 'holder')).claim(digest);
    const follower = await new TransferGate(objects, new Leases(objects, 'follower'), { minPollMs: 30 }).claim(digest);
    assert.ok(holder.role === 'holder' && follower.role === 'follower');

    const reader = createFollowReader({ watcher: follower.watcher, start: 100, end: blob.length, readRange: (s, e) => pieces.read(s, e) });
    let before = 0;
    let transferring = true;
    reader.on('data', (c: Buffer) => {
      if (transferring) before += c.length;
    });
    const got = drain(reader);
    await transfer(blob, pieces, holder.progress, { delayMs: 100 });
    transferring = false;
    await holder.lease.release();
    const { sha, bytes } = await got;
    assert.equal(bytes, blob.length - 100);
    assert.ok(before >= 4 * PIECE, `${before} bytes reached the client while the transfer ran`);
    assert.ok(before < blob.length - 100, 'the last byte waited for done');
    assert.equal(sha, createHash('sha256').update(blob.subarray(100)).digest('hex'));
  });

  it('takes the transfer over when its holder dies half way and continues from the pieces it left', async () => {
    const blob = randomBytes(PIECE * 8);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const pieces = new Pieces(piecesBucket, digest);
    const ttlMs = 1000;
    const dyingObjects = new GatedObjects(access);
    const dying = await new TransferGate(dyingObjects, new Leases(dyingObjects, 'dying', { ttlMs })).claim(digest);
    const gate = new TransferGate(objects, new Leases(objects, 'survivor', { ttlMs }), { minPollMs: 30, maxPollMs: 100, checkLeaseAfterMs: 200 });
    const follower = await gate.claim(digest);
    assert.ok(dying.role === 'holder' && follower.role === 'follower');

    const written: number[] = [];
    const write = pieces.write.bind(pieces);
    pieces.write = async (b, offset) => {
      written.push(offset);
      await write(b, offset);
    };
    let takeover: Promise<void> | undefined;
    const reader = createFollowReader({
      watcher: follower.watcher,
      start: 0,
      end: blob.length,
      readRange: (s, e) => pieces.read(s, e),
      async onOrphaned() {
        const claim = await gate.claim(digest);
        if (claim.role !== 'holder') return;
        takeover = transfer(blob, pieces, claim.progress).then(() => claim.lease.release());
      },
    });
    const got = drain(reader);
    await transfer(blob, pieces, dying.progress, { stopAfter: 3 });
    dyingObjects.close(); // it dies: nothing it writes reaches the bucket any more
    const { sha, bytes } = await got;
    await takeover;
    assert.equal(bytes, blob.length);
    assert.equal(sha, createHash('sha256').update(blob).digest('hex'));
    assert.deepEqual(written, [0, 1, 2, 3, 4, 5, 6, 7].map((i) => i * PIECE), 'each piece written once: the successor skipped the three there');
  });
});
