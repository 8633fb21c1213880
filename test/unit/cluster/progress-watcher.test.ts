/**
 * ProgressWatcher (lib/cluster/progress-watcher.ts) without a bucket: objects in memory, the
 * transfer's holder dead from the start (its progress and its lease never change again).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Leases, type LeaseView } from '../../../lib/cluster/lease.ts';
import { ClusterObjects, type StoredObject } from '../../../lib/cluster/objects.ts';
import { ProgressWatcher, TransferOrphanedError } from '../../../lib/cluster/progress-watcher.ts';
import { transferLeaseName } from '../../../lib/cluster/progress.ts';
import type { S3Bucket } from '../../../lib/storage/s3/bucket.ts';

const MiB = 1 << 20;
const digest = `sha256:${'9'.repeat(64)}`;

/** Fixed objects: what a dead holder left (its last progress, its last renewal), read by key. */
class FixedObjects extends ClusterObjects {
  constructor(private readonly objects: Record<string, StoredObject>) {
    super(undefined as unknown as S3Bucket);
  }

  override async get(key: string): Promise<StoredObject | undefined> {
    return this.objects[key];
  }
}

describe('ProgressWatcher: when a dead holder\'s transfer is orphaned', () => {
  it('looks at the lease again the moment it would expire, not up to a poll later', async () => {
    // Past a poll of the old back-off grid (first sight ~0, then looks at 0.2, 0.5, 0.95, 1.6, 2.6 s): it waited 0.9 s for the next.
    const ttlMs = 1700;
    const objects = new FixedObjects({
      [`progress/${digest}`]: { etag: 'p1', body: Buffer.from(JSON.stringify({ v: 1, digest, size: 4 * MiB, holder: 'dead', seq: 3, ranges: [[0, MiB]], released: MiB, done: false })) },
      [`leases/${transferLeaseName(digest)}`]: { etag: 'l1', body: Buffer.from(JSON.stringify({ v: 1, holder: 'dead', state: 'held', ttlMs, seq: 2, nonce: 'n', writtenAt: '' })) },
    });
    const views: Array<{ at: number; view: LeaseView }> = [];
    const leases = new (class extends Leases {
      override async inspect(name: string, signal?: AbortSignal): Promise<LeaseView> {
        const view = await super.inspect(name, signal);
        views.push({ at: performance.now(), view });
        return view;
      }
    })(objects, 'follower');
    const sleeps: number[] = [];
    // The defaults (polls backing off to 1 s), but the lease looked at after 200 ms without movement.
    const watcher = new ProgressWatcher(objects, leases, digest, {
      checkLeaseAfterMs: 200,
      sleep: (ms, signal) => { sleeps.push(ms); return sleep(ms, undefined, { signal }); },
    });
    const started = performance.now();
    const err = await watcher.until(MiB).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof TransferOrphanedError, String(err));
    const firstSight = views[0]!.at;
    const late = performance.now() - firstSight - ttlMs;
    // Within a timer's lag of the ttl (the poll grid alone put it up to 1 s after it).
    assert.ok(late < 300, `orphaned ${Math.round(late)} ms after the lease could expire (${Math.round(performance.now() - started)} ms after the first poll)`);
    // The look before the last said how long the lease had left; the wait after it was no longer.
    const lastHeld = views.filter((v) => v.view.state === 'held').at(-1)!;
    assert.ok(lastHeld.view.expiresInMs !== undefined && sleeps.at(-1)! <= lastHeld.view.expiresInMs + 5, `waited ${sleeps.at(-1)} ms with ${lastHeld.view.expiresInMs} ms left (sleeps ${sleeps.map(Math.round).join(', ')})`);
  });
});
