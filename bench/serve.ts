/**
 * Serving bench: ferry against the reference registry (distribution 2.8) on the same data.
 * Prints one table; not a test. Run: npx tsx bench/serve.ts   (see bench/README.md)
 */
import os from 'node:os';
import { MEDIA } from '../lib/oci/media-types.ts';
import type { Dockerd } from '../test/helpers/dockerd.ts';
import { run } from '../test/helpers/processes.ts';
import { timePulls, median, startBenchDockerd } from './lib/docker-pull.ts';
import { fanout } from './lib/fanout.ts';
import { BLOBS_REPO, PULL_REPO, TAG, buildFixtures, pushFixtures, type Fixtures } from './lib/fixtures.ts';
import { choosePinning } from './lib/pinning.ts';
import { measurePeakRss, statusField } from './lib/rss.ts';
import { startFerry, startReference, type BenchServer } from './lib/servers.ts';
import { buildFerry } from '../test/helpers/ferry-entry.ts';
import { renderTable, type Row } from './lib/table.ts';
import { runWrk, type WrkResult } from './lib/wrk.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const STAGES = ['manifest', 'blob1m', 'blob64m', 'pull', 'rss'] as const;
type Stage = (typeof STAGES)[number];

const env = process.env;
const durationS = Number(env.BENCH_DURATION ?? 3);
const rounds = Number(env.BENCH_ROUNDS ?? 5);
const pullRounds = Number(env.BENCH_PULLS ?? 5);
const fanoutClients = Number(env.BENCH_CLIENTS ?? 32);
const only = new Set((env.BENCH_ONLY ?? STAGES.join(',')).split(',').filter(Boolean) as Stage[]);
const pin = choosePinning(env);
const MB = 1e6;

const manifestAccept = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerManifestList].join(', ');

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

async function logRss(servers: BenchServer[], when: string): Promise<void> {
  const parts = await Promise.all(servers.map(async (s) => `${s.label} ${(((await statusField(s.servingPid, 'VmRSS')) ?? 0) / MB).toFixed(0)} MB${await heapOf(s)}`));
  log(`RSS ${when}: ${parts.join(', ')}`);
}

/** ferry's V8 heap and external memory from its /metrics (prom-client process metrics), when it has them. */
async function heapOf(s: BenchServer): Promise<string> {
  const text = await fetch(`${s.url}/metrics`).then((r) => (r.ok ? r.text() : ''), () => '');
  const metric = (name: string): number | undefined => {
    const m = new RegExp(`^ferry_${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) / MB : undefined;
  };
  const total = metric('nodejs_heap_size_total_bytes');
  const used = metric('nodejs_heap_size_used_bytes');
  const external = metric('nodejs_external_memory_bytes');
  return total === undefined ? '' : ` (V8 heap ${used?.toFixed(0)}/${total.toFixed(0)} MB, external ${external?.toFixed(0)} MB)`;
}

/** Runs fn against both servers, alternating who goes first between calls to spread drift. */
let flip = false;
async function both<T>(servers: BenchServer[], fn: (s: BenchServer) => Promise<T>): Promise<Record<string, T>> {
  const order = flip ? [...servers].reverse() : servers;
  flip = !flip;
  const out: Record<string, T> = {};
  for (const s of order) out[s.label] = await fn(s);
  return out;
}

/**
 * wrk on both servers: a warm-up each, then `rounds` interleaved runs; the median run (by
 * requests/s) stands for each server, so a burst of load from elsewhere hits both alike.
 */
async function wrkBoth(servers: BenchServer[], path: string, connections: number, accept?: string): Promise<Record<string, WrkResult>> {
  const runs: Record<string, WrkResult[]> = {};
  for (const s of servers) {
    runs[s.label] = [];
    // JIT, page cache, connection setup: not counted.
    await runWrk({ url: `${s.url}${path}`, threads: 2, connections, durationS: 1, accept, cpus: pin.client });
  }
  for (let r = 0; r < rounds; r++) {
    const got = await both(servers, (s) => runWrk({ url: `${s.url}${path}`, threads: 2, connections, durationS, accept, cpus: pin.client }));
    for (const [label, res] of Object.entries(got)) runs[label]?.push(res);
  }
  const out: Record<string, WrkResult> = {};
  for (const [label, rs] of Object.entries(runs)) {
    const sorted = [...rs].sort((a, b) => a.requestsPerS - b.requestsPerS);
    out[label] = sorted[Math.floor(sorted.length / 2)] as WrkResult;
    log(`${label} ${path}: req/s ${rs.map((x) => x.requestsPerS.toFixed(0)).join(' ')}; MB/s ${rs.map((x) => x.mbPerS.toFixed(0)).join(' ')}`);
  }
  return out;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  let fixtures: Fixtures | undefined;
  let dockerd: Dockerd | undefined;
  const servers: BenchServer[] = [];
  try {
    log('compiling ferry (npm run build) and building images (cached across runs)');
    await buildFerry();
    fixtures = await buildFixtures();
    const f = fixtures;
    servers.push(await startFerry(pin.server), await startReference(pin.server));
    for (const s of servers) {
      log(`pushing to ${s.label} (${s.host})`);
      await pushFixtures(f, s.host);
    }
    const blobPath = (digest: string): string => `/v2/${BLOBS_REPO}/blobs/${digest}`;

    await logRss(servers, 'after pushes');
    if (only.has('manifest')) {
      const r = await wrkBoth(servers, `/v2/${PULL_REPO}/manifests/${TAG}`, 32, manifestAccept);
      rows.push({ metric: 'manifest GET by tag (wrk -c32)', unit: 'req/s', ferry: r.ferry!.requestsPerS, reference: r.reference!.requestsPerS, higherIsBetter: true });
    }
    await logRss(servers, 'after manifests');
    if (only.has('blob1m')) {
      const r = await wrkBoth(servers, blobPath(f.blob1M.digest), 32);
      rows.push({ metric: `blob GET ${(f.blob1M.size / MB).toFixed(2)} MB (wrk -c32)`, unit: 'req/s', ferry: r.ferry!.requestsPerS, reference: r.reference!.requestsPerS, higherIsBetter: true });
      rows.push({ metric: `blob GET ${(f.blob1M.size / MB).toFixed(2)} MB (wrk -c32)`, unit: 'MB/s', ferry: r.ferry!.mbPerS, reference: r.reference!.mbPerS, higherIsBetter: true });
    }
    await logRss(servers, 'after 1 MB blobs');
    if (only.has('blob64m')) {
      const r = await wrkBoth(servers, blobPath(f.blob64M.digest), 4);
      rows.push({ metric: `blob GET ${(f.blob64M.size / MB).toFixed(1)} MB (wrk -c4)`, unit: 'MB/s', ferry: r.ferry!.mbPerS, reference: r.reference!.mbPerS, higherIsBetter: true });
    }
    await logRss(servers, 'after 64 MB blobs');
    if (only.has('pull')) {
      log('starting a private dockerd');
      dockerd = await startBenchDockerd(pin.client);
      const images = Object.fromEntries(servers.map((s) => [s.label, `${s.host}/${PULL_REPO}:${TAG}`]));
      const t = await timePulls(dockerd, images, pullRounds);
      log(`docker pull seconds: ${JSON.stringify(t.seconds)}`);
      const mb = f.pull.layers.reduce((n, l) => n + l.size, 0) / MB;
      rows.push({
        metric: `docker pull ${f.pull.layers.length} layers ${mb.toFixed(0)} MB (median of ${pullRounds})`,
        unit: 's',
        ferry: median(t.seconds.ferry ?? []),
        reference: median(t.seconds.reference ?? []),
        higherIsBetter: false,
      });
      await dockerd.stop();
      dockerd = undefined;
    }
    await logRss(servers, 'before the fan-out');
    if (only.has('rss')) {
      const measured = await both(servers, async (s) => {
        const { result, rss } = await measurePeakRss(s.servingPid, () => fanout(`${s.url}${blobPath(f.blob1G.digest)}`, fanoutClients, f.blob1G.size, pin.client));
        log(`${s.label} ${fanoutClients}x1 GiB: ${result.mbPerS.toFixed(0)} MB/s; RSS before ${(rss.before / MB).toFixed(1)} MB, peak sampled ${(rss.sampled / MB).toFixed(1)} MB, VmHWM ${rss.hwm === undefined ? '?' : (rss.hwm / MB).toFixed(1)} MB${rss.hwmReset ? '' : ' (not reset)'}`);
        return { result, peak: rss.hwmReset && rss.hwm !== undefined ? Math.max(rss.hwm, rss.sampled) : rss.sampled };
      });
      // The fan-out's throughput is logged above, not tabled: one run each, too exposed to load from elsewhere.
      const label = `peak RSS, ${fanoutClients} clients x ${(f.blob1G.size / MB).toFixed(0)} MB blob at once`;
      rows.push({ metric: label, unit: 'MB', ferry: measured.ferry!.peak / MB, reference: measured.reference!.peak / MB, higherIsBetter: false, limit: { max: 200, label: 'ferry < 200 MB' } });
    }

    const wrkVersion = (await run('wrk', ['-v'])).stdout.split('\n')[0];
    console.log(`ferry serve bench — node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), ${wrkVersion?.trim()}`);
    console.log(pin.server === undefined
      ? 'pinning: none (both servers may use every CPU; the reference is Go, multi-core)'
      : `pinning: each server on CPU ${pin.server} (Go: GOMAXPROCS=1 by affinity; node: one JS thread + libuv pool on that CPU), wrk/curl/dockerd on CPU ${pin.client}`);
    console.log(`wrk -t2 -d${durationS}s x ${rounds} interleaved rounds (median) after a 1 s warm-up; MB = 10^6 bytes; ferry/ref = ferry ÷ reference`);
    console.log('');
    console.log(renderTable(rows));
  } finally {
    await dockerd?.stop().catch(() => {});
    for (const s of servers) await s.stop().catch(() => {});
    await fixtures?.cleanup();
  }
}

await main();
