/**
 * Pre-warm of a Kolla profile over the bad link: a synthetic profile of ten images sharing their
 * parents' layers (512 MiB of distinct blobs) in a reference registry, behind the FaultProxy of
 * bench/link.ts (1 MB/s per connection, 16 MB/s in total, 200 ms RTT, a reset every ~32 MB per
 * connection, seeded), ferry as a child process with bench/link.ts's upstream settings, and the
 * real `ferry prewarm` CLI (a child process) filling it from an image list. Then the same
 * pre-warm again, everything held. Prints figures; not a test.
 *
 *   npx tsx bench/prewarm.ts [--seed 1] [-j N]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { kollaImageRefs } from '../lib/kolla/naming.ts';
import type { FaultProxy, Faults } from '../test/fault-proxy/proxy.ts';
import { buildImage, type BuiltImage } from '../test/helpers/oci-image.ts';
import { TEST_OUTPUT_DIR, run } from '../test/helpers/processes.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../test/helpers/reference-registry.ts';
import { pushImage } from '../test/helpers/skopeo.ts';
import { REPO_ROOT, buildFerry, ferryArgs } from '../test/helpers/ferry-entry.ts';
import { SYNTHETIC_KOLLA, SYNTHETIC_KOLLA_RELEASE as RELEASE, kollaAncestry } from '../test/e2e/kolla-synthetic.ts';
import { MiB, linkConfig, startFerryProcess, startLink } from '../test/e2e/transfer-fixture.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const MB = 1e6;
const LINK: Faults = { rateBytesPerSec: 1 * MB, aggregateBytesPerSec: 16 * MB, latencyMs: 200, resetMeanBytes: 32 * MB };
const CAP = LINK.aggregateBytesPerSec as number;
// As bench/link.ts: the default upstream `connections` (16) cannot fill 16 MB/s at 1 MB/s each.
const UPSTREAM = { connections: 32, retries: 50, headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 };

/** Each image's own layer, MiB: 512 MiB in all, the base a quarter of it. */
const OWN_LAYER_MIB: Record<string, number> = {
  base: 128,
  'openstack-base': 64,
  'nova-base': 32,
  'glance-base': 32,
  'keystone-base': 32,
  'nova-api': 48,
  'nova-compute': 64,
  'nova-conductor': 32,
  'glance-api': 48,
  keystone: 32,
};

function arg(names: string[], fallback: string): string {
  const i = process.argv.findIndex((a) => names.includes(a));
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const mb = (n: number): string => (n / MB).toFixed(1);
const seconds = (ms: number): string => (ms / 1000).toFixed(1);

interface Profile {
  refs: string[];
  images: Map<string, BuiltImage>;
  /** Distinct blobs (configs and layers) of all images. */
  blobs: Map<string, number>;
  manifestBytes: number;
}

/** Builds the images (layers shared through their seeds) and pushes them as kolla/centos-binary-X:2.0.2. */
async function buildProfile(registry: ReferenceRegistry): Promise<Profile> {
  const refs = kollaImageRefs({ release: RELEASE, profile: 'synth', distro: 'centos', data: SYNTHETIC_KOLLA });
  const images = new Map<string, BuiltImage>();
  const blobs = new Map<string, number>();
  let manifestBytes = 0;
  for (const ref of refs) {
    const name = /centos-binary-(.+):/.exec(ref)?.[1];
    if (!name) throw new Error(`unexpected Kolla reference ${ref}`);
    const chain = kollaAncestry(name);
    const image = await buildImage({
      seed: `bench-prewarm/${name}`,
      layers: chain.map((x) => (OWN_LAYER_MIB[x] ?? 16) * MiB),
      layerSeeds: chain.map((x) => `bench-prewarm-layer/${x}`),
      format: 'docker',
    });
    images.set(ref, image);
    blobs.set(image.configDigest, image.config.length);
    for (const l of image.layers) blobs.set(l.digest, l.size);
    manifestBytes += image.manifest.length;
    await pushImage(image, registry.host, ref.slice(0, ref.lastIndexOf(':')), RELEASE, { timeoutMs: 300_000 });
  }
  return { refs, images, blobs, manifestBytes };
}

/** Prints the proxy's delivery rate every few seconds to stderr, so a long run shows life. */
function watch(proxy: FaultProxy, total: number): () => void {
  let last = proxy.stats.bytesToClient;
  const t = setInterval(() => {
    const now = proxy.stats.bytesToClient;
    process.stderr.write(`  [prewarm] ${mb(now)} / ${mb(total)} MB across the link, ${mb((now - last) / 5)} MB/s, ${proxy.stats.resets} resets\n`);
    last = now;
  }, 5000);
  return () => clearInterval(t);
}

interface CliRun {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node dist/scripts/ferry.js prewarm --mirror URL -f LIST [-j N]`, timed from spawn to exit. */
async function prewarmCli(mirror: string, list: string, concurrency: string | undefined): Promise<CliRun> {
  const args = [...ferryArgs(true), 'prewarm', '--mirror', mirror, '-f', list, ...(concurrency ? ['-j', concurrency] : [])];
  const started = performance.now();
  const r = await run(process.execPath, args, { cwd: REPO_ROOT, timeoutMs: 600_000 });
  return { ms: performance.now() - started, code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** The report's last line: "N of M images done, ...; X MiB in T s, goodput G MB/s". */
function finalLine(out: string): string {
  return out.trim().split('\n').at(-1) ?? '(no output)';
}

async function main(): Promise<void> {
  const seed = Number(arg(['--seed'], '1'));
  const concurrency = process.argv.some((a) => a === '-j' || a === '--concurrency') ? arg(['-j', '--concurrency'], '3') : undefined;
  console.log(`link: ${mb(LINK.rateBytesPerSec!)} MB/s per connection, ${mb(CAP)} MB/s aggregate, ${LINK.latencyMs} ms RTT, a reset every ~${mb(LINK.resetMeanBytes!)} MB per connection (seed ${seed})`);
  await buildFerry();
  const registry = await startReferenceRegistry({ name: 'bench-prewarm-upstream' });
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-prewarm-'));
  let proxy: FaultProxy | undefined;
  let ferry: Awaited<ReturnType<typeof startFerryProcess>> | undefined;
  try {
    const profile = await buildProfile(registry);
    const distinct = [...profile.blobs.values()].reduce((a, b) => a + b, 0);
    const layerCount = [...profile.images.values()].reduce((n, i) => n + i.layers.length, 0);
    console.log(`profile: ${profile.refs.length} Kolla images (${RELEASE}, centos binary), ${layerCount} layer references, ${profile.blobs.size} distinct blobs = ${mb(distinct)} MB (largest ${mb(Math.max(...profile.blobs.values()))} MB)`);
    const list = path.join(work, 'images.txt');
    await writeFile(list, `# synthetic Kolla profile, parents first\n${profile.refs.join('\n')}\n`);

    proxy = await startLink(registry.host, LINK, seed);
    ferry = await startFerryProcess(linkConfig(proxy.url, undefined, UPSTREAM), path.join(work, 'data'), 'bench-prewarm-ferry', { compiled: true });
    const f = ferry;
    console.log(`\n(1) ferry prewarm -f images.txt${concurrency ? ` -j ${concurrency}` : ' (default -j)'} through ferry (a child, transfer defaults, upstream connections ${UPSTREAM.connections}) -> link -> registry`);
    let rssPeak = 0;
    const rssTimer = setInterval(() => void f.peakRss().then((r) => { rssPeak = Math.max(rssPeak, r ?? 0); }), 250);
    const stopWatch = watch(proxy, distinct);
    const cold = await prewarmCli(ferry.url, list, concurrency);
    stopWatch();
    clearInterval(rssTimer);
    rssPeak = Math.max(rssPeak, (await ferry.peakRss()) ?? 0);
    await mkdir(TEST_OUTPUT_DIR, { recursive: true });
    await writeFile(path.join(TEST_OUTPUT_DIR, 'bench-prewarm-cli.log'), cold.stderr + cold.stdout);
    if (cold.code !== 0) throw new Error(`ferry prewarm exited ${cold.code}:\n${cold.stdout}\n${cold.stderr.slice(-4000)}`);
    const goodput = (distinct * 1000) / cold.ms;
    const fromUpstream = proxy.stats.bytesFromUpstream;
    console.log(`  distinct blob bytes: ${mb(distinct)} MB in ${profile.blobs.size} blobs (+ ${profile.refs.length} manifests, ${(profile.manifestBytes / 1000).toFixed(1)} kB)`);
    console.log(`  wall time (CLI spawn to exit, node start included): ${seconds(cold.ms)} s`);
    console.log(`  goodput: ${mb(goodput)} MB/s = ${((goodput / CAP) * 100).toFixed(1)}% of the ${mb(CAP)} MB/s cap`);
    console.log(`  bytes fetched twice: ${mb(fromUpstream - distinct - profile.manifestBytes)} MB (proxy bytesFromUpstream ${mb(fromUpstream)} MB - blobs and manifests ${mb(distinct + profile.manifestBytes)} MB; headers included), ${proxy.stats.resets} resets, ${proxy.stats.connections} connections`);
    console.log(`  prewarm's report: ${finalLine(cold.stdout)}`);
    console.log(`  ferry peak RSS (VmHWM of the child): ${mb(rssPeak)} MB`);

    console.log('\n(2) the same pre-warm again, everything in ferry\'s store');
    const before = proxy.stats.bytesFromUpstream;
    const warm = await prewarmCli(ferry.url, list, concurrency);
    if (warm.code !== 0) throw new Error(`second ferry prewarm exited ${warm.code}:\n${warm.stdout}\n${warm.stderr.slice(-4000)}`);
    console.log(`  wall time: ${seconds(warm.ms)} s; ${mb(proxy.stats.bytesFromUpstream - before)} MB crossed the link`);
    console.log(`  prewarm's report: ${finalLine(warm.stdout)}`);
  } finally {
    await ferry?.stop();
    await proxy?.close();
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
