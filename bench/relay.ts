/**
 * Relay bench: the goodput of one big blob pulled by a ferry mirror across the simulated
 * international link of bench/link.ts (1 MB/s per connection, 16 MB/s in total, 200 ms RTT, a
 * reset every ~32 MB per connection), directly from the registry and through a ferry relay
 * (cold: the relay fetches the blob from the registry at the same time). Target: via relay
 * within 10% of direct. Prints both figures; not a test. Run: npx tsx bench/relay.ts
 *
 *   BENCH_SIZE_MIB (128)  BENCH_LINK_MBPS per connection (1)  BENCH_LINK_TOTAL_MBPS (16)
 *   BENCH_LINK_LATENCY_MS (200)  BENCH_LINK_RESET_MB (32; 0 = none)  BENCH_ROUNDS (3)
 */
import { generateToken } from '../lib/relay/tokens.ts';
import { startTestMirror } from '../test/e2e/mirror-fixture.ts';
import { FaultProxy, type Faults } from '../test/fault-proxy/proxy.ts';
import { buildImage } from '../test/helpers/oci-image.ts';
import { startReferenceRegistry } from '../test/helpers/reference-registry.ts';
import { pushImage } from '../test/helpers/skopeo.ts';
import { startTestRelay } from '../test/relay/fixture.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const env = process.env;
const MiB = 1 << 20;
const MB = 1e6;
const sizeMiB = Number(env.BENCH_SIZE_MIB ?? 128);
const LINK: Faults = {
  rateBytesPerSec: Number(env.BENCH_LINK_MBPS ?? 1) * MB,
  aggregateBytesPerSec: Number(env.BENCH_LINK_TOTAL_MBPS ?? 16) * MB,
  latencyMs: Number(env.BENCH_LINK_LATENCY_MS ?? 200),
  ...(Number(env.BENCH_LINK_RESET_MB ?? 32) > 0 ? { resetMeanBytes: Number(env.BENCH_LINK_RESET_MB ?? 32) * MB } : {}),
};
// As bench/link.ts: the default 16 connections cannot fill 16 MB/s at 1 MB/s each.
const UPSTREAM = { connections: 32, retries: 50 };
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
log(`blob ${(layer.size / MB).toFixed(1)} MB; link ${JSON.stringify(LINK)}`);

/** Seconds for the mirror to hold the blob, its upstream (`target`) reached over a fresh link. */
async function pullOnce(target: string, upstream: Record<string, unknown>): Promise<number> {
  const link = new FaultProxy({ target, seed: 5, faults: LINK });
  await link.listen();
  const mirror = await startTestMirror({
    upstreams: { up: { url: link.url, ...UPSTREAM, ...upstream } },
    rewrite: [{ match: 'kolla/*', upstream: 'up', ...(upstream.kind === 'relay' ? { upstreamName: 'docker.io/kolla/*' } : {}) }],
  });
  try {
    const t0 = performance.now();
    await mirror.mirror.backend.getBlob('kolla/bench', layer.digest);
    const transfer = mirror.mirror.transfers.get(layer.digest);
    if (transfer) await transfer.committed;
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
