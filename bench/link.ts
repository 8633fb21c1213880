/**
 * Pull over the bad link: a 512 MiB image (one 256 MiB layer) behind a FaultProxy playing the
 * international link (1 MB/s per connection, 16 MB/s in total, 200 ms RTT, a reset every ~32 MB
 * per connection, seeded), pulled by a private dockerd (a) through ferry (a child process, for
 * its peak RSS) and (b) through distribution 2.8 in proxy mode behind a fresh, identical proxy.
 * Then kill -9 of ferry at half of the 256 MiB layer, a restart, and the bytes fetched again.
 * Prints figures; not a test.
 *
 *   npx tsx bench/link.ts [--reference-minutes 10] [--skip-reference] [--seed 1]
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { transferSchema } from '../lib/config/schema.ts';
import { StorePaths } from '../lib/storage/paths.ts';
import { chunkSizeFor } from '../lib/transfer/chunk-plan.ts';
import { loadJournal } from '../lib/transfer/journal.ts';
import type { FaultProxy, Faults } from '../test/fault-proxy/proxy.ts';
import { startDockerd, type Dockerd } from '../test/helpers/dockerd.ts';
import { buildFerry } from '../test/helpers/ferry-entry.ts';
import { startReferenceRegistry } from '../test/helpers/reference-registry.ts';
import { MiB, blobsOfImage, linkConfig, readBlob, startFerryProcess, startLink, startUpstream, type FerryProcess, type Upstream } from '../test/e2e/transfer-fixture.ts';

const MB = 1e6;
const LINK: Faults = { rateBytesPerSec: 1 * MB, aggregateBytesPerSec: 16 * MB, latencyMs: 200, resetMeanBytes: 32 * MB };
const CAP = LINK.aggregateBytesPerSec as number;
// Connections at their default (32); retries and timeouts generous, as for a link this bad.
const UPSTREAM = { connections: 32, retries: 50, headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 };

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const mb = (n: number): string => (n / MB).toFixed(1);
const seconds = (ms: number): string => (ms / 1000).toFixed(1);

/** Prints the proxy's delivery rate every few seconds to stderr, so a long run shows life. */
function watch(label: string, proxy: FaultProxy, total: number): () => void {
  let last = proxy.stats.bytesToClient;
  const t = setInterval(() => {
    const now = proxy.stats.bytesToClient;
    process.stderr.write(`  [${label}] ${mb(now)} / ${mb(total)} MB across the link, ${mb((now - last) / 5)} MB/s, ${proxy.stats.resets} resets\n`);
    last = now;
  }, 5000);
  return () => clearInterval(t);
}

async function waitUntil(fn: () => Promise<boolean> | boolean, pollMs = 100): Promise<number> {
  while (!(await fn())) await new Promise((r) => setTimeout(r, pollMs));
  return performance.now();
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

async function ferryPull(up: Upstream, imageBytes: number, seed: number): Promise<number> {
  console.log('\n(a) docker pull through ferry (dockerd -> ferry -> link -> registry), ferry defaults for transfer');
  const proxy = await startLink(up.registry.host, LINK, seed);
  const data = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-link-'));
  const ferry = await startFerryProcess(linkConfig(proxy.url, undefined, UPSTREAM), data, 'bench-link-ferry', { compiled: true });
  const dockerd = await startDockerd({ name: 'bench-link-ferry' });
  const stopWatch = watch('ferry', proxy, imageBytes);
  try {
    const paths = new StorePaths(data);
    const blobs = blobsOfImage(up.image);
    const started = performance.now();
    let rssPeak = 0;
    const rssTimer = setInterval(() => void ferry.peakRss().then((r) => { rssPeak = Math.max(rssPeak, r ?? 0); }), 250);
    const stored = waitUntil(async () => (await Promise.all(blobs.map((b) => exists(paths.blob(b.digest))))).every(Boolean));
    await dockerd.docker(['pull', '-q', `${ferry.host}/${up.repository}:${up.tag}`], { timeoutMs: 900_000 });
    const pulledAt = performance.now();
    const storedAt = await stored;
    clearInterval(rssTimer);
    rssPeak = Math.max(rssPeak, (await ferry.peakRss()) ?? 0);
    const linkGoodput = (imageBytes * 1000) / (storedAt - started);
    const pullGoodput = (imageBytes * 1000) / (pulledAt - started);
    const twice = proxy.stats.bytesFromUpstream - imageBytes;
    console.log(`  all blobs verified in ferry's store after ${seconds(storedAt - started)} s: goodput ${mb(linkGoodput)} MB/s = ${((linkGoodput / CAP) * 100).toFixed(1)}% of the ${mb(CAP)} MB/s cap`);
    console.log(`  docker pull (download + unpack on vfs) took ${seconds(pulledAt - started)} s: ${mb(pullGoodput)} MB/s = ${((pullGoodput / CAP) * 100).toFixed(1)}% of the cap`);
    console.log(`  bytes fetched twice: ${mb(twice)} MB (proxy bytesFromUpstream ${mb(proxy.stats.bytesFromUpstream)} MB - image ${mb(imageBytes)} MB; headers included), ${proxy.stats.resets} resets, ${proxy.stats.connections} connections`);
    console.log(`  ferry peak RSS (VmHWM of the child): ${mb(rssPeak)} MB`);
    return linkGoodput;
  } finally {
    stopWatch();
    await dockerd.stop();
    await ferry.stop();
    await proxy.close();
    await rm(data, { recursive: true, force: true });
  }
}

/** Connections carrying ranges for ferry's transfers now, from its status document. */
async function transferConnections(url: string): Promise<string> {
  try {
    const status = (await (await fetch(`${url}/status.json`)).json()) as { transfers: Array<{ connections: number; concurrency: number }> };
    return status.transfers.map((t) => `${t.connections} (link budget ${t.concurrency})`).join(', ') || '0';
  } catch (err) {
    return `unknown (${String(err)})`;
  }
}

async function killAtHalf(up: Upstream, seed: number): Promise<void> {
  const layer = [...up.image.layers].sort((a, b) => b.size - a.size)[0]!;
  const chunk = chunkSizeFor(layer.size, transferSchema.parse({}));
  console.log(`\n(c) kill -9 of ferry at 50% of the ${mb(layer.size)} MB layer (HTTP GET of the blob), restart on the same data dir`);
  const proxy = await startLink(up.registry.host, LINK, seed + 1);
  const data = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-kill-'));
  const config = linkConfig(proxy.url, undefined, UPSTREAM);
  let ferry: FerryProcess = await startFerryProcess(config, data, 'bench-link-kill-1', { compiled: true });
  const stopWatch = watch('kill -9', proxy, layer.size);
  try {
    const started = performance.now();
    const first = readBlob(ferry.url, up.repository, layer.digest).catch(() => undefined);
    await waitUntil(() => proxy.stats.bytesToClient >= layer.size / 2, 50);
    const busy = await transferConnections(ferry.url);
    const droppedBefore = proxy.stats.bytesDropped;
    const openAtKill = proxy.openConnections;
    await ferry.kill9();
    await first;
    await waitUntil(() => proxy.openConnections === 0, 20);
    const atKill = { ...proxy.stats };
    const droppedByKill = atKill.bytesDropped - droppedBefore;
    const journal = path.join(new StorePaths(data).transfersDir, `${layer.digest.slice('sha256:'.length)}.journal`);
    const kept = (await loadJournal(journal, layer.digest, layer.size))?.size ?? 0;
    await ferry.stop();
    ferry = await startFerryProcess(config, data, 'bench-link-kill-2', { compiled: true });
    const second = await readBlob(ferry.url, up.repository, layer.digest);
    if (second.digest !== layer.digest) throw new Error(`after the restart the blob was ${second.digest} (${second.bytes} bytes)`);
    await ferry.stop();
    await waitUntil(() => proxy.openConnections === 0, 20);
    const end = proxy.stats;
    const chunks = (n: number): string => `${(n / chunk).toFixed(2)} chunks`;
    // Every byte read from upstream was either delivered to ferry or dropped by the link at a reset or at the kill.
    const deliveredTwice = end.bytesToClient - layer.size;
    const droppedByResets = end.bytesDropped - droppedByKill;
    const gross = end.bytesFromUpstream - layer.size;
    const cost = deliveredTwice + droppedByKill;
    console.log(`  killed with ${mb(atKill.bytesToClient)} MB delivered to ferry, ${mb(kept)} MB of it in ferry's journal; whole layer verified after ${seconds(performance.now() - started)} s`);
    console.log(`  cost of the kill: ${mb(cost)} MB = ${chunks(cost)} of ${mb(chunk)} MB (target <= 2 chunks) = ${mb(deliveredTwice)} MB ferry had received and fetched again (${chunks(deliveredTwice)}; headers included) + ${mb(droppedByKill)} MB the link held in flight at the kill (${chunks(droppedByKill)}; ${openAtKill} connections open, ${busy} carrying ranges)`);
    console.log(`  gross, with the resets of both runs: ${mb(gross)} MB = ${chunks(gross)} read twice from upstream (the kill's ${mb(cost)} MB + ${mb(droppedByResets)} MB the link dropped at ${end.resets} resets)`);
  } finally {
    stopWatch();
    await ferry.stop();
    await proxy.close();
    await rm(data, { recursive: true, force: true });
  }
}

/** Sum of the image's blobs that distribution holds complete in its storage. */
async function referenceHolds(dataDir: string, blobs: Array<{ digest: string; size: number }>): Promise<number> {
  let n = 0;
  for (const b of blobs) {
    const hex = b.digest.slice('sha256:'.length);
    const p = path.join(dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    if ((await stat(p).then((s) => s.size, () => -1)) === b.size) n += b.size;
  }
  return n;
}

async function referencePull(up: Upstream, imageBytes: number, seed: number, minutes: number): Promise<number> {
  console.log(`\n(b) docker pull through distribution 2.8 in proxy mode behind a fresh identical link (capped at ${minutes} min)`);
  const proxy = await startLink(up.registry.host, LINK, seed);
  const reference = await startReferenceRegistry({ name: 'bench-link-reference', proxy: { remoteUrl: proxy.url } });
  let dockerd: Dockerd | undefined;
  const stopWatch = watch('reference', proxy, imageBytes);
  try {
    dockerd = await startDockerd({ name: 'bench-link-reference' });
    const started = performance.now();
    const deadline = started + minutes * 60_000;
    let done = false;
    let attempts = 0;
    // docker gives up on a layer after a few retries; a user would run the pull again, so do we.
    while (!done && performance.now() < deadline - 1000) {
      attempts++;
      const r = await dockerd.dockerRaw(['pull', '-q', `${reference.host}/${up.repository}:${up.tag}`], { timeoutMs: Math.max(1000, deadline - performance.now()) });
      done = r.code === 0;
    }
    const elapsed = performance.now() - started;
    const held = await referenceHolds(reference.dataDir, blobsOfImage(up.image));
    const useful = done ? imageBytes : held;
    const goodput = (useful * 1000) / elapsed;
    console.log(`  ${done ? 'finished' : 'did NOT finish'} after ${seconds(elapsed)} s and ${attempts} docker pull run(s)`);
    console.log(`  how far: ${mb(held)} / ${mb(imageBytes)} MB of blobs complete in its store; ${mb(proxy.stats.bytesToClient)} MB crossed the link (${mb(proxy.stats.bytesFromUpstream)} MB from upstream), ${proxy.stats.resets} resets`);
    console.log(`  goodput ${mb(goodput)} MB/s = ${((goodput / CAP) * 100).toFixed(1)}% of the cap (complete blobs / elapsed)`);
    return goodput;
  } finally {
    stopWatch();
    await dockerd?.stop();
    await reference.stop();
    await proxy.close();
  }
}

async function main(): Promise<void> {
  const seed = Number(arg('--seed', '1'));
  const minutes = Number(arg('--reference-minutes', '10'));
  const layers = [256, 128, 64, 32, 16, 8, 4, 4].map((n) => n * MiB);
  console.log(`link: ${mb(LINK.rateBytesPerSec!)} MB/s per connection, ${mb(CAP)} MB/s aggregate, ${LINK.latencyMs} ms RTT, a reset every ~${mb(LINK.resetMeanBytes!)} MB per connection (seed ${seed})`);
  await buildFerry();
  const up = await startUpstream({ layers, seed: 'bench-link', repository: 'bench/link', tag: 'v1' });
  const imageBytes = blobsOfImage(up.image).reduce((n, b) => n + b.size, 0) + up.image.manifest.length;
  console.log(`image: ${up.image.layers.length} layers, ${mb(imageBytes)} MB (largest ${mb(Math.max(...up.image.layers.map((l) => l.size)))} MB)`);
  try {
    const ferry = await ferryPull(up, imageBytes, seed);
    await killAtHalf(up, seed);
    if (!process.argv.includes('--skip-reference')) {
      const reference = await referencePull(up, imageBytes, seed, minutes);
      console.log(`\nferry / reference goodput: ${reference > 0 ? `${(ferry / reference).toFixed(1)}x` : 'infinite (the reference completed no blob)'}`);
    }
  } finally {
    await up.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
