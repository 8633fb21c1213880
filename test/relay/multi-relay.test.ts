/**
 * Several relays for one upstream: skopeo -> ferry mirror -> three fault proxies (links with
 * unequal caps) -> three ferry relays (one token each) -> reference registry. Ranges spread in
 * proportion to what each relay delivers; a relay that goes dark mid-pull, or serves corrupt
 * pieces, is drained and the client sees nothing of it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateToken } from '../../lib/relay/tokens.ts';
import type { RelayRow } from '../../lib/metrics/relay-metrics.ts';
import { startTestMirror, type TestMirror } from '../e2e/mirror-fixture.ts';
import { FaultProxy } from '../fault-proxy/proxy.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { waitFor } from '../helpers/processes.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage, skopeoCopy } from '../helpers/skopeo.ts';
import { call, startTestRelay, type TestRelay } from './fixture.ts';

const MiB = 1 << 20;

interface Leg {
  token: string;
  relay: TestRelay;
  link: FaultProxy;
}

describe('several relays for one upstream (skopeo -> mirror -> 3 links -> 3 relays -> registry)', function () {
  this.timeout(180_000);
  let registry: ReferenceRegistry;
  let legs: Leg[] = [];
  let mirror: TestMirror | undefined;
  let work: string;
  const images: Record<'spread' | 'dark' | 'corrupt', BuiltImage> = {} as never;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-multi-relay-'));
    registry = await startReferenceRegistry({ name: 'multi-relay-registry' });
    images.spread = await buildImage({ seed: 'multi-relay/spread', layers: [8 * MiB] });
    images.dark = await buildImage({ seed: 'multi-relay/dark', layers: [24 * MiB, 16 * MiB, 256 * 1024] });
    images.corrupt = await buildImage({ seed: 'multi-relay/corrupt', layers: [16 * MiB] });
    for (const [k, image] of Object.entries(images)) await pushImage(image, registry.host, `kolla/multi-${k}`, '1');
    legs = await Promise.all([0, 1, 2].map(async (i) => {
      const token = generateToken();
      // Plain HTTP (a relay behind a TLS-terminating proxy): a flipped byte is then bad content, not a TLS error.
      const relay = await startTestRelay({ upstreams: { hub: { url: registry.url, hosts: ['docker.io'] } }, relay: { tokens: [token], chunkBytes: MiB } });
      const link = new FaultProxy({ target: relay.host, seed: 40 + i, faults: { latencyMs: 10 } });
      await link.listen();
      return { token, relay, link };
    }));
  });

  afterEach(async () => {
    await mirror?.stop();
    mirror = undefined;
    for (const leg of legs) leg.link.clearFaults();
  });

  after(async () => {
    for (const leg of legs) {
      await leg.link.close();
      await leg.relay.stop();
    }
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A mirror whose one upstream is the three relays, each with its own token (or the one given). */
  async function startMirror(transfer: Record<string, number> = {}, tokens: Array<string | undefined> = []): Promise<TestMirror> {
    mirror = await startTestMirror({
      upstreams: { relay: { kind: 'relay', relays: legs.map((l, i) => ({ url: l.link.url, token: tokens[i] ?? l.token })), retries: 3 } },
      rewrite: [{ match: 'kolla/*', upstream: 'relay', upstreamName: 'docker.io/kolla/*' }],
      transfer: { minChunkBytes: 512 * 1024, maxChunkBytes: 512 * 1024, ...transfer },
    });
    return mirror;
  }

  async function relayRows(m: TestMirror): Promise<RelayRow[]> {
    return (await m.mirror.ops.status()).relays;
  }

  /**
   * Each relay fetches the image's layers from the registry first, so no range of the pull waits
   * on a relay's own fill: on a machine short of CPU that can outlast darkMs, and a relay busy
   * filling was drained as dark (another then carried nothing, or the one to go dark never
   * reached its share).
   */
  async function warmRelays(key: keyof typeof images): Promise<void> {
    for (const leg of legs) {
      for (const layer of images[key].layers) {
        const warm = await call(`${leg.relay.url}/v2/docker.io/kolla/multi-${key}/blobs/${layer.digest}`, { token: leg.token });
        assert.equal(warm.body.length, layer.size, `relay ${leg.relay.url} holds ${layer.digest}`);
      }
    }
  }

  /** skopeo pulls the image to a dir: one layer at a time, each checked against its digest. */
  async function pull(m: TestMirror, key: keyof typeof images): Promise<void> {
    const dest = join(work, `${key}-${Date.now()}`);
    await skopeoCopy(`docker://${m.host}/kolla/multi-${key}:1`, `dir:${dest}`);
    for (const layer of images[key].layers) {
      const bytes = await readFile(join(dest, layer.digest.slice('sha256:'.length)));
      assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, layer.digest);
    }
  }

  it('spreads the ranges of one blob over all relays, most to the one that delivers most', async () => {
    // The links' caps must be what limits each relay, also on a machine short of CPU (CI, where
    // this process moves every byte through a relay, a link and the mirror): 2.6 MiB/s together.
    // Each relay has the blob already, so none waits on its own fill (which could last darkMs
    // there). The slow relay holds at first as many ranges as the others (nothing is measured
    // yet): 12 connections of 128 KiB keep that small beside the blob (0.5 MiB, 2.5 s at its cap).
    const caps = [1600 * 1024, 800 * 1024, 200 * 1024];
    await warmRelays('spread');
    legs.forEach((l, i) => l.link.setFaults({ latencyMs: 10, aggregateBytesPerSec: caps[i] as number }));
    const m = await startMirror({ minConnections: 12, maxConnections: 12, minChunkBytes: 128 * 1024, maxChunkBytes: 128 * 1024 });
    await pull(m, 'spread');
    const rows = await relayRows(m);
    const bytes = rows.map((r) => r.bytes);
    assert.ok(bytes.every((b) => b > 0), `every relay carried some: ${bytes.join(', ')}`);
    assert.ok(bytes[0]! > bytes[1]! && bytes[1]! > bytes[2]!, `bytes follow the caps 8:4:1: ${bytes.join(', ')}`);
    assert.ok(rows.every((r) => r.state === 'healthy'), 'nobody was drained');
    const metrics = (await call(`${m.url}/metrics`)).body.toString();
    for (const leg of legs) {
      assert.match(metrics, new RegExp(`ferry_relay_bytes_total\\{upstream="relay",relay="${leg.link.url.replace(/[.]/g, '\\.')}"\\} [1-9]`));
      assert.match(metrics, new RegExp(`ferry_relay_state\\{upstream="relay",relay="${leg.link.url.replace(/[.]/g, '\\.')}",state="healthy"\\} 1`));
    }
    assert.match(metrics, /ferry_relay_goodput_bytes_per_second\{upstream="relay"/);
    assert.match(metrics, /ferry_relay_connections\{upstream="relay",relay="[^"]+"\} [1-9]/);
  });

  it('keeps a pull whole when one relay goes dark in the middle of it', async () => {
    legs.forEach((l) => l.link.setFaults({ latencyMs: 10, aggregateBytesPerSec: 6 * MiB }));
    await warmRelays('dark');
    const m = await startMirror();
    const dark = legs[1]!;
    const pulling = pull(m, 'dark');
    pulling.catch(() => {});
    await waitFor(async () => ((await relayRows(m))[1]?.bytes ?? 0) >= 2 * MiB, 30_000, 'the relay to go dark is carrying ranges');
    // Black hole: open connections and new ones stop forwarding for good, nothing is closed.
    dark.link.setFaults({ latencyMs: 10, dark: true });
    await pulling;
    const rows = await relayRows(m);
    assert.ok(rows[1]!.drained >= 1 && rows[1]!.state !== 'healthy', `the dark relay was drained: ${JSON.stringify(rows[1])}`);
    assert.match(rows[1]?.lastError ?? '', /no byte for \d+ s while other relays delivered|aborted due to timeout/, JSON.stringify(rows[1]));
    assert.ok(rows[0]!.bytes > 0 && rows[2]!.bytes > 0);
    const status = await (await call(`${m.url}/status`)).body.toString();
    assert.match(status, /id="relays"/);
  });

  it('drains a relay that refuses its token, and the pull goes on through the others', async () => {
    const m = await startMirror({}, [undefined, undefined, generateToken()]);
    await pull(m, 'spread');
    const rows = await relayRows(m);
    assert.equal(rows[2]?.state, 'down');
    assert.match(rows[2]?.lastError ?? '', /401/);
    assert.equal(rows[2]?.bytes, 0);
    assert.ok(rows[0]!.bytes > 0 && rows[1]!.bytes > 0);
  });

  it('drains a relay that serves corrupt pieces, and the blob still arrives whole', async () => {
    const bad = legs[2]!;
    bad.link.setFaults({ latencyMs: 10, corruptPerMiB: 2 });
    const m = await startMirror();
    // Pieces are verified before a client gets them: the first pull is whole.
    await pull(m, 'corrupt');
    const rows = await relayRows(m);
    assert.ok(bad.link.stats.corruptions > 0);
    assert.ok(rows[2]!.drained >= 1 && rows[2]!.state !== 'healthy', `the corrupting relay was drained: ${JSON.stringify(rows[2])}`);
    assert.match(rows[2]?.lastError ?? '', /failed their digest/);
  });
});
