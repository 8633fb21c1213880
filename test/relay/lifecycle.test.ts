import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { TransferStarter } from '../../lib/mirror/transfers.ts';
import { generateToken } from '../../lib/relay/tokens.ts';
import { LOCK_FILE } from '../../lib/storage/data-dir-lock.ts';
import type { TransferSnapshot } from '../../lib/transfer/transfer.ts';
import { startTestMirror } from '../e2e/mirror-fixture.ts';
import { buildImage } from '../helpers/oci-image.ts';
import { sleep, waitFor } from '../helpers/processes.ts';
import { startReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { call, startTestRelay } from './fixture.ts';

/** A blob the fake upstream serves, and a transferStarter whose transfer is verified and commits once `release` is called. */
async function gatedCommit(): Promise<{ digest: string; upstream: Server; transferStarter: TransferStarter; release: () => void; committing: () => boolean; committedAt: () => number }> {
  const data = Buffer.from('a blob being committed while the relay stops');
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const upstream: Server = createServer((_req, res) => res.writeHead(200, { 'content-length': data.length, 'docker-content-digest': digest }).end());
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  let committing = false;
  let committedAt = 0;
  // A transfer already verified: it commits once the gate opens, and ignores abort (as the engine does).
  const transferStarter: TransferStarter = (req) => ({
    digest: req.digest,
    size: req.size,
    createReader: () => Readable.from([]),
    done: (async () => {
      const part = await req.partials.open(req.digest, data.length);
      await part.write(0, data);
      committing = true;
      await gate;
      await part.commit(req.digest);
      await req.afterCommit();
      await part.close();
      committedAt = performance.now();
    })(),
    abort: () => {},
    snapshot: () => ({ digest: req.digest, size: req.size, state: 'running' }) as TransferSnapshot,
  });
  return { digest, upstream, transferStarter, release, committing: () => committing, committedAt: () => committedAt };
}

describe('relay lifecycle: the order a mirror and a relay share', function () {
  this.timeout(20_000);

  it('close() waits for a commit in progress before it releases the data dir', async () => {
    const g = await gatedCommit();
    const token = generateToken();
    const relay = await startTestRelay({
      upstreams: { up: { url: `http://127.0.0.1:${(g.upstream.address() as AddressInfo).port}` } },
      defaultUpstream: 'up',
      relay: { tokens: [token] },
    }, { deps: { transferStarter: g.transferStarter } });
    try {
      const head = await call(`${relay.url}/v2/lib/x/blobs/${g.digest}`, { method: 'HEAD', token });
      assert.equal(head.status, 200);
      await waitFor(g.committing, 5000, 'the commit to start');
      let closedAt = 0;
      const closing = relay.relay.close().then(() => { closedAt = performance.now(); });
      await sleep(300);
      assert.equal(closedAt, 0, 'close() returned while a commit was in progress');
      g.release();
      await closing;
      assert.ok(g.committedAt() > 0 && g.committedAt() <= closedAt, 'the commit finished before close() returned');
      assert.ok(await relay.relay.store.blobs.has(g.digest), 'the committed blob is in the store');
    } finally {
      g.release();
      await relay.stop().catch(() => {});
      await new Promise<void>((resolve) => g.upstream.close(() => resolve()));
    }
  });

  it('SIGTERM (shutdown) waits for a commit in progress however long it takes before it releases the data dir', async function () {
    this.timeout(30_000);
    const g = await gatedCommit();
    const token = generateToken();
    const relay = await startTestRelay({
      upstreams: { up: { url: `http://127.0.0.1:${(g.upstream.address() as AddressInfo).port}` } },
      defaultUpstream: 'up',
      relay: { tokens: [token] },
    }, { deps: { transferStarter: g.transferStarter } });
    try {
      assert.equal((await call(`${relay.url}/v2/lib/x/blobs/${g.digest}`, { method: 'HEAD', token })).status, 200);
      await waitFor(g.committing, 5000, 'the commit to start');
      let stoppedAt = 0;
      const stopping = relay.relay.shutdown({ graceMs: 0 }).then(() => { stoppedAt = performance.now(); });
      // Longer than any fixed bound for parked transfers (it was 5 s): the commit alone bounds the wait.
      await sleep(5500);
      assert.equal(stoppedAt, 0, 'shutdown released the data dir while a commit was in progress');
      assert.ok(existsSync(join(relay.dataDir, LOCK_FILE)), 'the lock is held while the commit runs');
      g.release();
      await stopping;
      assert.ok(g.committedAt() > 0 && g.committedAt() <= stoppedAt, 'the commit finished before shutdown returned');
      assert.ok(await relay.relay.store.blobs.has(g.digest), 'the committed blob is in the store');
    } finally {
      g.release();
      await relay.stop().catch(() => {});
      await new Promise<void>((resolve) => g.upstream.close(() => resolve()));
    }
  });

  it('a mirror with prefetches queued stops them first on SIGTERM: no transfer starts, no part is written once shutdown began', async function () {
    this.timeout(60_000);
    const registry = await startReferenceRegistry({ name: 'lifecycle-registry' });
    // Four small blobs (config and three layers), prefetched one at a time: three wait in the queue.
    const image = await buildImage({ seed: 'lifecycle/prefetch', layers: [4096, 4096, 4096] });
    await pushImage(image, registry.host, 'lib/queued', '1');
    let stoppingAt = 0;
    let lockFile = '';
    let readers = 0;
    const startedWhileStopping: string[] = [];
    const writesWithoutLock: string[] = [];
    const running: Array<Promise<void>> = [];
    // An engine-like transfer: appends to its .part until aborted; once the stop began, its link fails
    // (a transfer ending on its own while a client's request holds the grace period).
    const transferStarter: TransferStarter = (req) => {
      if (stoppingAt > 0) startedWhileStopping.push(req.digest);
      const aborted = new AbortController();
      const done = (async () => {
        const part = await req.partials.open(req.digest, req.size);
        try {
          for (let pos = 0; !aborted.signal.aborted; pos++) {
            if (stoppingAt > 0 && performance.now() - stoppingAt > 100) throw new Error('connection reset');
            await part.write(pos, Buffer.from('x'));
            if (!existsSync(lockFile)) writesWithoutLock.push(req.digest);
            await sleep(10);
          }
        } finally {
          await part.close();
        }
        throw new Error('parked');
      })();
      running.push(done.catch(() => {}));
      return {
        digest: req.digest,
        size: req.size,
        // The client's response: no byte comes, so its request runs until the grace period ends.
        createReader: () => { readers++; return new Readable({ read() {} }); },
        done,
        abort: () => aborted.abort(),
        snapshot: () => ({ digest: req.digest, size: req.size, state: 'running' }) as TransferSnapshot,
      };
    };
    const mirror = await startTestMirror({
      upstreams: { hub: { url: registry.url } },
      defaultUpstream: 'hub',
      prefetch: { concurrency: 1 },
    }, { transferStarter });
    lockFile = join(mirror.dataDir, LOCK_FILE);
    const client = new AbortController();
    try {
      const manifest = await call(`${mirror.url}/v2/lib/queued/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(manifest.status, 200);
      await waitFor(() => running.length === 1, 10_000, 'the first prefetch to start');
      // A client asks for the blob being prefetched (the transfer is its own now) and keeps its request open.
      fetch(`${mirror.url}/v2/lib/queued/blobs/${image.configDigest}`, { signal: client.signal }).catch(() => {});
      await waitFor(() => readers > 0, 10_000, 'the client to join the transfer');
      stoppingAt = performance.now();
      const result = await mirror.mirror.shutdown({ graceMs: 1000 });
      assert.equal(result.cut, true, 'the client request held the grace period');
      const started = running.length;
      await Promise.all(running);
      assert.equal(running.length, started, 'no transfer started once shutdown returned');
      assert.deepEqual(startedWhileStopping, [], 'transfers started after shutdown began');
      assert.deepEqual(writesWithoutLock, [], 'parts written after the lock was released');
      assert.equal(existsSync(lockFile), false, 'the lock is released');
    } finally {
      client.abort();
      await mirror.stop().catch(() => {});
      await registry.stop();
    }
  });
});
