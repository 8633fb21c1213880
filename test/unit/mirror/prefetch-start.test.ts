/**
 * Prefetch with the default settings: a served manifest starts every blob of a small image at once.
 * The link serves prefetches oldest first (link-budget.ts), so starting them all does not change
 * the order they arrive in; holding some back only left the last layer to start when an earlier
 * one ended (small-docker: the 4 MiB layer started 13 s in and ended the pull 1.6 s later).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { configSchema } from '../../../lib/config/schema.ts';
import { silentLogger } from '../../../lib/log/logger.ts';
import { Prefetcher } from '../../../lib/mirror/prefetch.ts';
import type { TransferHandle, TransferRequest, Transfers } from '../../../lib/mirror/transfers.ts';
import type { UpstreamPort } from '../../../lib/mirror/upstream-port.ts';
import type { Storage } from '../../../lib/storage/storage.ts';

const digestOf = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
/** A few turns of the event loop: the prefetcher's starts each await the store once. */
const settle = async (): Promise<void> => { for (let k = 0; k < 10; k++) await new Promise((resolve) => setImmediate(resolve)); };

describe('prefetch with the default settings', () => {
  it('starts every blob of a small image at once, not a few at a time', async () => {
    const started: string[] = [];
    const transfers = {
      get: () => undefined,
      ensure: (req: TransferRequest) => {
        started.push(req.digest);
        return { digest: req.digest, committed: new Promise<void>(() => {}), transfer: { abort: () => {} } } as unknown as TransferHandle;
      },
    } as unknown as Transfers;
    const store = { blobs: { has: async () => false } } as unknown as Storage;
    const upstream = { rangeSource: () => ({}) } as unknown as UpstreamPort;
    const defaults = configSchema.parse({}).prefetch;
    const prefetcher = new Prefetcher(transfers, store, defaults, silentLogger);
    const blob = (i: number): { mediaType: string; digest: string; size: number } => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(`layer ${i}`), size: (32 >> i) * 1024 * 1024 });
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf('config'), size: 947 },
      layers: [0, 1, 2, 3, 4].map(blob),
    };
    prefetcher.manifestServed({ upstreamKey: 'hub', upstream, repository: 'bench/small', cache: 'hub/bench/small', bytes: Buffer.from(JSON.stringify(manifest)), mediaType: manifest.mediaType });
    // Each start asks the store (a promise) first: a few turns of the loop, no timer.
    return settle().then(() => {
      prefetcher.close();
      assert.deepEqual(started, [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]);
    });
  });

  it('starts an image\'s blobs as one group (served oldest first among themselves by the link), another image\'s as another', async () => {
    const groups = new Map<string, string | undefined>();
    const transfers = {
      get: () => undefined,
      ensure: (req: TransferRequest) => {
        groups.set(req.digest, req.group);
        return { digest: req.digest, committed: new Promise<void>(() => {}), transfer: { abort: () => {} } } as unknown as TransferHandle;
      },
    } as unknown as Transfers;
    const store = { blobs: { has: async () => false } } as unknown as Storage;
    const upstream = { rangeSource: () => ({}) } as unknown as UpstreamPort;
    const prefetcher = new Prefetcher(transfers, store, configSchema.parse({}).prefetch, silentLogger);
    const images = [0, 1].map((i) => ({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(`config ${i}`), size: 947 },
      layers: [0, 1, 2].map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(`image ${i} layer ${l}`), size: 1024 })),
    }));
    try {
      for (const m of images) {
        prefetcher.manifestServed({ upstreamKey: 'hub', upstream, repository: 'bench/small', cache: 'hub/bench/small', bytes: Buffer.from(JSON.stringify(m)), mediaType: m.mediaType });
      }
      await settle();
      const of = (m: (typeof images)[number]): Array<string | undefined> => [m.config, ...m.layers].map((b) => groups.get(b.digest));
      const [first, second] = [of(images[0]!), of(images[1]!)];
      assert.equal(new Set(first).size, 1, `one group for the blobs of image 0: ${first.join(', ')}`);
      assert.equal(new Set(second).size, 1);
      assert.ok(first[0] !== undefined && second[0] !== undefined && first[0] !== second[0], 'each image a group of its own (same repository)');
    } finally {
      prefetcher.close();
    }
  });

  it('runs at most prefetch.maxTransfers over every image; a slot freed goes to the oldest image waiting', async () => {
    const started: string[] = [];
    const ends = new Map<string, () => void>();
    const transfers = {
      get: () => undefined,
      ensure: (req: TransferRequest) => {
        started.push(req.digest);
        const committed = new Promise<void>((resolve) => ends.set(req.digest, resolve));
        return { digest: req.digest, committed, transfer: { abort: () => {} } } as unknown as TransferHandle;
      },
    } as unknown as Transfers;
    const store = { blobs: { has: async () => false } } as unknown as Storage;
    const upstream = { rangeSource: () => ({}) } as unknown as UpstreamPort;
    const opts = { ...configSchema.parse({}).prefetch, concurrency: 16, maxTransfers: 20 };
    const prefetcher = new Prefetcher(transfers, store, opts, silentLogger);
    /** Image i: a config and 15 layers, every digest its own. */
    const images = [0, 1, 2].map((i) => ({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(`config ${i}`), size: 947 },
      layers: Array.from({ length: 15 }, (_, l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(`image ${i} layer ${l}`), size: 1024 })),
    }));
    const blobsOf = (m: (typeof images)[number]): string[] => [m.config.digest, ...m.layers.map((l) => l.digest)];
    try {
      for (const [i, m] of images.entries()) {
        prefetcher.manifestServed({ upstreamKey: 'hub', upstream, repository: `bench/i${i}`, cache: `hub/bench/i${i}`, bytes: Buffer.from(JSON.stringify(m)), mediaType: m.mediaType });
      }
      await settle();
      // 16 of image 0 (its concurrency), then 4 of image 1: 20 in all; image 2 waits.
      assert.deepEqual(started, [...blobsOf(images[0]!), ...blobsOf(images[1]!).slice(0, 4)]);
      // Two of image 0 end: image 1, the oldest waiting, gets both slots.
      ends.get(blobsOf(images[0]!)[0]!)!();
      ends.get(blobsOf(images[0]!)[1]!)!();
      await settle();
      assert.deepEqual(started.slice(20), blobsOf(images[1]!).slice(4, 6));
      assert.equal(started.length, 22, 'no more than maxTransfers at once');
    } finally {
      prefetcher.close();
    }
  });
});
