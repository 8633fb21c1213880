/**
 * The whole chain: dockerd -> ferry mirror -> fault proxy (the link) -> ferry relay (TLS, token)
 * -> reference registry (token auth). A multi-layer image arrives byte-identical; the relay is
 * restarted in the middle of a transfer and the pull still completes; a chunk corrupted on the
 * link is fetched again alone, thanks to the relay's per-chunk digests.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TransferHandle } from '../../lib/mirror/transfers.ts';
import { generateToken } from '../../lib/relay/tokens.ts';
import { startTestMirror, type TestMirror, fsPaths } from '../e2e/mirror-fixture.ts';
import { FaultProxy } from '../fault-proxy/proxy.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { sleep, waitFor } from '../helpers/processes.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTokenServer, type TokenServer } from '../helpers/token-server.ts';
import { call, errorCode, makeTlsFiles, startTestRelay, type TestRelay, type TlsFiles } from './fixture.ts';

const MiB = 1 << 20;
const TOKEN = generateToken();

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** Records the transfers a Transfers starts, by digest. */
function recordFills(transfers: { on(e: 'started', f: (transfer: TransferHandle) => void): unknown }): Map<string, TransferHandle> {
  const seen = new Map<string, TransferHandle>();
  transfers.on('started', (transfer: TransferHandle) => seen.set(transfer.digest, transfer));
  return seen;
}

describe('ferry relay in the chain dockerd -> mirror -> link -> relay (TLS) -> registry (token auth)', function () {
  this.timeout(180_000);
  let tokens: TokenServer;
  let registry: ReferenceRegistry;
  let tls: TlsFiles;
  let tlsDir: string;
  let upstreamLink: FaultProxy;
  let link: FaultProxy;
  let relay: TestRelay;
  let relayConfig: Parameters<typeof startTestRelay>[0];
  let mirror: TestMirror;
  let dockerd: Dockerd;
  const images: Record<'a' | 'b' | 'c', BuiltImage> = {} as never;

  before(async () => {
    tokens = await startTokenServer({ users: { pusher: 'pw' }, anonymousPull: true });
    registry = await startReferenceRegistry({ name: 'relay-chain-registry', token: { realm: tokens.realm, issuer: tokens.issuer, certPath: tokens.certPath } });
    images.a = await buildImage({ seed: 'relay-chain/a', layers: [40 * MiB, 2 * MiB, 64 * 1024], runnable: { message: 'hello through the relay' } });
    images.b = await buildImage({ seed: 'relay-chain/b', layers: [32 * MiB, MiB], runnable: { message: 'hello after a relay restart' } });
    images.c = await buildImage({ seed: 'relay-chain/c', layers: [24 * MiB] });
    for (const [k, image] of Object.entries(images)) {
      await pushImage(image, registry.host, `kolla/relay-chain-${k}`, '1', { destCreds: { username: 'pusher', password: 'pw' } });
    }
    tlsDir = await mkdtemp(join(tmpdir(), 'ferry-relay-chain-tls-'));
    tls = await makeTlsFiles(tlsDir);
    upstreamLink = new FaultProxy({ target: registry.host, seed: 11 });
    await upstreamLink.listen();
    relayConfig = {
      upstreams: { hub: { url: upstreamLink.url, hosts: ['docker.io'] } },
      tls: { cert: tls.certFile, key: tls.keyFile },
      relay: { tokens: [TOKEN], allow: ['hub'] },
    };
    relay = await startTestRelay(relayConfig);
    link = new FaultProxy({ target: relay.host, seed: 12, faults: { latencyMs: 10 } });
    await link.listen();
    mirror = await startTestMirror({
      upstreams: { relay: { url: `https://127.0.0.1:${link.port}`, kind: 'relay', token: TOKEN, caFile: tls.caFile, retries: 10 } },
      rewrite: [{ match: 'kolla/*', upstream: 'relay', upstreamName: 'docker.io/kolla/*' }],
    });
    dockerd = await startDockerd({ name: 'relay-chain' });
  });

  after(async () => {
    await dockerd?.stop();
    await mirror?.stop();
    await link?.close();
    await relay?.stop();
    await upstreamLink?.close();
    await registry?.stop();
    await tokens?.close();
    if (tlsDir) await rm(tlsDir, { recursive: true, force: true });
  });

  async function pullAndCheck(key: 'a' | 'b'): Promise<void> {
    const image = images[key];
    const ref = `${mirror.host}/kolla/relay-chain-${key}:1`;
    await dockerd.docker(['pull', ref]);
    const rootfs = JSON.parse(await dockerd.docker(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref])) as string[];
    assert.deepEqual(rootfs, image.layers.map((l) => l.diffId));
    for (const layer of image.layers) {
      assert.equal(await fileDigest(fsPaths(mirror.mirror.store).blob(layer.digest)), layer.digest, 'the mirror holds the very bytes');
    }
    const out = await dockerd.docker(['run', '--rm', '--network', 'none', ref]);
    assert.equal(out, image.runOutput);
  }

  it('pulls a multi-layer image that arrives byte-identical, the relay fetching each blob once', async () => {
    await pullAndCheck('a');
    for (const layer of images.a.layers) assert.ok(relay.relay.cache.has(layer.digest), 'the relay cached it');
    const total = images.a.layers.reduce((n, l) => n + l.size, 0);
    assert.ok(upstreamLink.stats.bytesToClient < total * 1.1 + MiB, `registry sent ${upstreamLink.stats.bytesToClient} bytes for ${total}`);
  });

  it('gets DENIED from the mirror and no content when its relay token is wrong or missing', async () => {
    for (const token of [generateToken(), undefined]) {
      const bad = await startTestMirror({
        upstreams: { relay: { url: `https://127.0.0.1:${link.port}`, kind: 'relay', caFile: tls.caFile, retries: 0, ...(token ? { token } : {}) } },
        rewrite: [{ match: 'kolla/*', upstream: 'relay', upstreamName: 'docker.io/kolla/*' }],
      });
      try {
        const before = upstreamLink.stats.connections;
        const m = await call(`${bad.url}/v2/kolla/relay-chain-a/manifests/1`);
        assert.equal(m.status, 403, m.body.toString());
        assert.equal(errorCode(m), 'DENIED');
        assert.match(m.body.toString(), /refused access to .*\(401\)/);
        const b = await call(`${bad.url}/v2/kolla/relay-chain-a/blobs/${images.a.layers[1]!.digest}`);
        assert.equal(b.status, 403);
        assert.equal(await bad.mirror.store.blobs.has(images.a.layers[1]!.digest), false);
        assert.equal(upstreamLink.stats.connections, before, 'the relay asked nothing upstream');
      } finally {
        await bad.stop();
      }
    }
  });

  it('completes a pull when the relay is stopped and started again (same port, same data) mid-transfer', async () => {
    const big = images.b.layers.reduce((a, l) => (l.size > a.size ? l : a));
    // The relay's side at 4 MiB/s: its 32 MiB fill takes ~8 s, so the mirror's 2 MiB come while the
    // relay is still mid-transfer (at 16 MiB/s, with today's faster slow start, it had finished first).
    upstreamLink.setFaults({ aggregateBytesPerSec: 4 * MiB });
    link.setFaults({ aggregateBytesPerSec: 16 * MiB });
    const mirrorFills = recordFills(mirror.mirror.transfers);
    const pulling = pullAndCheck('b');
    pulling.catch(() => {});
    await waitFor(() => {
      const relayFill = relay.relay.transfers.get(big.digest);
      const mirrorFill = mirror.mirror.transfers.get(big.digest);
      return Boolean(relayFill && mirrorFill && relayFill.transfer.snapshot().bytesDone >= 8 * MiB && mirrorFill.transfer.snapshot().bytesDone >= 2 * MiB);
    }, 30_000, 'both transfers under way');
    const relayDone = relay.relay.transfers.get(big.digest)!.transfer.snapshot().bytesDone;
    assert.ok(relayDone < big.size, 'the relay was mid-transfer');
    const { port, dataDir } = relay;
    await relay.stop({ keepData: true });
    await sleep(300);
    relay = await startTestRelay(relayConfig, { port, dataDir });
    const relayFills = recordFills(relay.relay.transfers);
    upstreamLink.clearFaults();
    await pulling;
    link.clearFaults();
    const resumed = relayFills.get(big.digest);
    assert.ok(resumed, 'the restarted relay took the transfer up again');
    await resumed.committed;
    assert.ok(resumed.transfer.snapshot().resumedBytes >= relayDone / 2, `the relay resumed from its part file (${resumed.transfer.snapshot().resumedBytes} of ${relayDone} bytes)`);
    const mirrorFill = mirrorFills.get(big.digest);
    assert.ok(mirrorFill && mirrorFill.transfer.snapshot().retries > 0, 'the mirror saw the relay go and retried');
  });
});

describe('ferry relay per-chunk digests: a chunk corrupted on the link is fetched again alone, and never reaches the client', function () {
  this.timeout(120_000);
  let registry: ReferenceRegistry;
  let relay: TestRelay;
  let link: FaultProxy;
  let mirror: TestMirror;
  let image: BuiltImage;

  before(async () => {
    registry = await startReferenceRegistry({ name: 'relay-chunks-registry' });
    image = await buildImage({ seed: 'relay-chain/c', layers: [24 * MiB] });
    await pushImage(image, registry.host, 'kolla/relay-chunks', '1');
    // Plain HTTP (a relay behind a TLS-terminating proxy): over TLS a flipped byte is a TLS error, not bad content.
    relay = await startTestRelay({ upstreams: { hub: { url: registry.url, hosts: ['docker.io'] } }, relay: { tokens: [TOKEN], chunkBytes: MiB } });
    link = new FaultProxy({ target: relay.host, seed: 13 });
    await link.listen();
    mirror = await startTestMirror({
      // One connection, one chunk at a time: the link's byte offsets map to blob offsets.
      upstreams: { relay: { url: link.url, kind: 'relay', token: TOKEN, connections: 1, retries: 3 } },
      rewrite: [{ match: 'kolla/*', upstream: 'relay', upstreamName: 'docker.io/kolla/*' }],
      // Pieces of 1 MiB: the mirror asks the relay's digests at its own piece size.
      transfer: { minConnections: 1, maxConnections: 1, minChunkBytes: MiB, maxChunkBytes: MiB, pieceBytes: MiB },
    });
  });

  after(async () => {
    await mirror?.stop();
    await link?.close();
    await relay?.stop();
    await registry?.stop();
  });

  it('refetches about one relay chunk (1 MiB) of a 24 MiB blob, not the blob', async () => {
    const layer = image.layers[0]!;
    const transfers = recordFills(mirror.mirror.transfers);
    link.setFaults({ corruptOffsets: [6 * MiB + 777] });
    const url = `${mirror.url}/v2/kolla/relay-chunks/blobs/${layer.digest}`;
    // The client streaming alongside is sent checked pieces only: it gets the blob at once.
    const first = await call(url);
    await waitFor(() => mirror.mirror.store.blobs.has(layer.digest), 60_000, 'the mirror committed the blob');
    link.clearFaults();
    assert.equal(link.stats.corruptions, 1);
    const transfer = transfers.get(layer.digest);
    assert.ok(transfer);
    const snap = transfer.transfer.snapshot();
    assert.equal(snap.chunksRefetched, 1, 'one chunk was bad');
    const refetched = link.stats.bytesToClient - layer.size;
    assert.ok(refetched >= MiB && refetched < 2 * MiB, `the link carried ${refetched} bytes beyond the blob`);
    const again = await call(url);
    assert.equal(again.status, 200);
    assert.equal(createHash('sha256').update(again.body).digest('hex'), layer.digest.slice(7));
    assert.equal(first.status, 200);
    assert.equal(createHash('sha256').update(first.body).digest('hex'), layer.digest.slice(7), 'the first client got other bytes than the blob');
  });
});
