/**
 * Relay bench: the goodput of one big blob pulled by a ferry mirror across a simulated link
 * (per-connection rate cap, latency), directly from the registry and through a ferry relay (cold:
 * the relay fetches it from the registry at the same time). Target: via relay within 10% of
 * direct. Prints both figures; not a test. Run: npx tsx bench/relay.ts
 *
 *   BENCH_SIZE_MIB (128)  BENCH_LINK_MBPS per connection (2)  BENCH_LINK_LATENCY_MS (80)
 *   BENCH_ROUNDS (3)
 */
import { generateToken } from '../lib/relay/tokens.ts';
import { startTestMirror } from '../test/e2e/mirror-fixture.ts';
import { FaultProxy } from '../test/fault-proxy/proxy.ts';
import { buildImage } from '../test/helpers/oci-image.ts';
import { startReferenceRegistry } from '../test/helpers/reference-registry.ts';
import { pushImage } from '../test/helpers/skopeo.ts';
import { startTestRelay } from '../test/relay/fixture.ts';

const env = process.env;
const MiB = 1 << 20;
const MB = 1e6;
const sizeMiB = Number(env.BENCH_SIZE_MIB ?? 128);
const linkRate = Number(env.BENCH_LINK_MBPS ?? 2) * MB;
const latencyMs = Number(env.BENCH_LINK_LATENCY_MS ?? 80);
const rounds = Number(env.BENCH_ROUNDS ?? 3);
const TOKEN = generateToken();

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

const registry = await startReferenceRegistry({ name: 'bench-relay-registry' });
const image = await buildImage({ seed: 'bench-relay', layers: [sizeMiB * MiB] });
const layer = image.layers[0]!;
await pushImage(image, registry.host, 'kolla/bench', '1');
log(`blob ${(layer.size / MB).toFixed(1)} MB; link ${(linkRate / MB).toFixed(1)} MB/s per connection, ${latencyMs} ms RTT`);

/** Seconds for the mirror to hold the blob, its upstream reached through `upstreamUrl` over the link. */
async function pullOnce(target: string, upstream: Record<string, unknown>): Promise<number> {
  const link = new FaultProxy({ target, seed: 5, faults: { rateBytesPerSec: linkRate, latencyMs } });
  await link.listen();
  const mirror = await startTestMirror({
    upstreams: { up: { url: link.url, connections: 64, ...upstream } },
    rewrite: [{ match: 'kolla/*', upstream: 'up', ...(upstream.kind === 'relay' ? { upstreamName: 'docker.io/kolla/*' } : {}) }],
  });
  try {
    const t0 = performance.now();
    await mirror.mirror.backend.getBlob('kolla/bench', layer.digest);
    const fill = mirror.mirror.fills.get(layer.digest);
    if (fill) await fill.committed;
    const seconds = (performance.now() - t0) / 1000;
    if (!(await mirror.mirror.store.blobs.has(layer.digest))) throw new Error('the blob did not arrive');
    return seconds;
  } finally {
    await mirror.stop();
    await link.close();
  }
}

const direct: number[] = [];
const viaRelay: number[] = [];
try {
  for (let r = 0; r < rounds; r++) {
    direct.push(await pullOnce(registry.host, { kind: 'registry' }));
    log(`round ${r + 1} direct: ${(layer.size / MB / direct.at(-1)!).toFixed(1)} MB/s`);
    const relay = await startTestRelay({ upstreams: { hub: { url: registry.url, hosts: ['docker.io'] } }, relay: { tokens: [TOKEN] } });
    try {
      viaRelay.push(await pullOnce(relay.host, { kind: 'relay', token: TOKEN }));
    } finally {
      await relay.stop();
    }
    log(`round ${r + 1} via relay (cold): ${(layer.size / MB / viaRelay.at(-1)!).toFixed(1)} MB/s`);
  }
} finally {
  await registry.stop();
}

const goodput = (s: number[]): number => layer.size / MB / median(s);
const d = goodput(direct);
const v = goodput(viaRelay);
const ratio = v / d;
process.stdout.write([
  `figure                         MB/s`,
  `goodput direct                 ${d.toFixed(2)}`,
  `goodput via relay (cold)       ${v.toFixed(2)}`,
  `via relay / direct             ${ratio.toFixed(3)}   target >= 0.90: ${ratio >= 0.9 ? 'met' : 'NOT met'}`,
  '',
].join('\n'));
