/**
 * SIGTERM on a `ferry mirror` process in the middle of a slow pull-through: it exits 0 promptly,
 * the transfer's .part and .journal stay, and the next start resumes from them (the completion
 * log line reports the resumed bytes, and the blob served is the right one).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FaultProxy } from '../fault-proxy/proxy.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { freePort, startProcess, waitFor, type ManagedProcess } from '../helpers/processes.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';

const MiB = 1024 * 1024;
const FERRY = resolve(import.meta.dirname, '../../bin/ferry.js');

describe('graceful shutdown parks pull-through transfers', function () {
  this.timeout(120_000);
  let dir: string;
  let registry: ReferenceRegistry;
  let proxy: FaultProxy;
  let image: BuiltImage;
  let configFile: string;
  let port: number;
  const children: ManagedProcess[] = [];

  const startFerry = async (): Promise<ManagedProcess> => {
    const child = await startProcess({
      name: 'ferry-shutdown',
      command: process.execPath,
      args: [FERRY, 'mirror', '--config', configFile],
      env: { ...process.env, FERRY_LISTEN: `127.0.0.1:${port}` },
      ready: { url: `http://127.0.0.1:${port}/healthz` },
      graceMs: 20_000,
    });
    children.push(child);
    return child;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-shutdown-'));
    image = await buildImage({ layers: [12 * MiB], seed: 'ops-shutdown' });
    registry = await startReferenceRegistry();
    await pushImage(image, registry.host, 'test/big', 'v1');
    // Two connections at 256 KiB/s each: the 12 MiB layer takes about 24 s, so it is mid-way when stopped.
    proxy = new FaultProxy({ target: registry.host, faults: { rateBytesPerSec: 256 * 1024 } });
    await proxy.listen();
    port = await freePort();
    configFile = join(dir, 'mirror.json');
    await writeFile(configFile, JSON.stringify({
      dataDir: join(dir, 'data'),
      log: { level: 'info', format: 'json' },
      upstreams: { hub: { url: proxy.url } },
      defaultUpstream: 'hub',
      transfer: { minChunkBytes: MiB, maxChunkBytes: MiB, minConnections: 2, maxConnections: 2 },
    }));
  });

  after(async () => {
    for (const c of children) await c.stop();
    await proxy?.close();
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 on SIGTERM leaving .part and .journal, and the next start resumes the blob', async () => {
    const layer = image.layers[0];
    assert.ok(layer);
    const blobUrl = `http://127.0.0.1:${port}/v2/test/big/blobs/${layer.digest}`;
    const first = await startFerry();
    // A client starts the pull-through, then goes away: the transfer carries on without it.
    const client = new AbortController();
    const res = await fetch(blobUrl, { signal: client.signal });
    assert.equal(res.status, 200);
    const status = async (): Promise<{ transfers: Array<{ digest: string; bytesDone: number }> }> => (await fetch(`http://127.0.0.1:${port}/status.json`)).json() as never;
    await waitFor(async () => ((await status()).transfers[0]?.bytesDone ?? 0) >= 3 * MiB, 30_000, '3 MiB transferred');
    client.abort();
    await res.body?.cancel().catch(() => {});

    const stoppedAt = Date.now();
    first.child.kill('SIGTERM');
    const exit = await first.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - stoppedAt < 12_000, `took ${Date.now() - stoppedAt} ms`);
    const log = await readFile(first.logPath, 'utf8');
    assert.match(log, /"msg":"parking transfers"/);
    assert.match(log, /"msg":"shutdown complete"/);
    const hex = layer.digest.slice('sha256:'.length);
    const files = (await readdir(join(dir, 'data', 'transfers', 'sha256'))).sort();
    assert.deepEqual(files, [`${hex}.journal`, `${hex}.part`]);

    proxy.setFaults({ rateBytesPerSec: 64 * MiB });
    const second = await startFerry();
    const body = Buffer.from(await (await fetch(blobUrl)).arrayBuffer());
    assert.equal(`sha256:${createHash('sha256').update(body).digest('hex')}`, layer.digest);
    await waitFor(async () => /"msg":"transfer complete"/.test(await readFile(second.logPath, 'utf8')), 10_000, 'the completion log line');
    const done = (await readFile(second.logPath, 'utf8')).split('\n').filter((l) => l.includes('"msg":"transfer complete"')).map((l) => JSON.parse(l) as { resumedBytes: number });
    assert.equal(done.length, 1);
    assert.ok((done[0]?.resumedBytes ?? 0) >= 2 * MiB, `resumed ${done[0]?.resumedBytes} bytes`);
    assert.deepEqual(await readdir(join(dir, 'data', 'transfers', 'sha256')), []);
  });
});
