import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Downloader } from '../../lib/mirror/ports.ts';
import { generateToken } from '../../lib/relay/tokens.ts';
import type { TransferSnapshot } from '../../lib/transfer/downloader.ts';
import { sleep, waitFor } from '../helpers/processes.ts';
import { call, startTestRelay } from './fixture.ts';

describe('relay lifecycle: the order a mirror and a relay share', function () {
  this.timeout(20_000);

  it('close() waits for a commit in progress before it releases the data dir', async () => {
    const data = Buffer.from('a blob being committed while the relay closes');
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const upstream: Server = createServer((_req, res) => res.writeHead(200, { 'content-length': data.length, 'docker-content-digest': digest }).end());
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let committing = false;
    let committedAt = 0;
    // A fill already verified: it commits once the gate opens, and ignores abort (as the engine does).
    const downloader: Downloader = (req) => ({
      digest: req.digest,
      size: req.size,
      createReader: () => Readable.from([]),
      done: (async () => {
        await mkdir(req.dir, { recursive: true });
        const part = join(req.dir, `${req.digest.slice(7)}.part`);
        await writeFile(part, data);
        committing = true;
        await gate;
        await req.commit(part);
        committedAt = performance.now();
      })(),
      abort: () => {},
      snapshot: () => ({ digest: req.digest, size: req.size, state: 'running' }) as TransferSnapshot,
    });
    const token = generateToken();
    const relay = await startTestRelay({
      upstreams: { up: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` } },
      defaultUpstream: 'up',
      relay: { tokens: [token] },
    }, { deps: { downloader } });
    try {
      const head = await call(`${relay.url}/v2/lib/x/blobs/${digest}`, { method: 'HEAD', token });
      assert.equal(head.status, 200);
      await waitFor(() => committing, 5000, 'the commit to start');
      let closedAt = 0;
      const closing = relay.relay.close().then(() => { closedAt = performance.now(); });
      await sleep(300);
      assert.equal(closedAt, 0, 'close() returned while a commit was in progress');
      release();
      await closing;
      assert.ok(committedAt > 0 && committedAt <= closedAt, 'the commit finished before close() returned');
      assert.ok(await relay.relay.store.blobs.has(digest), 'the committed blob is in the store');
    } finally {
      release();
      await relay.stop().catch(() => {});
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });
});
