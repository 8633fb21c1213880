/**
 * Scale-out bench (issue 15.4): 1 replica on the filesystem, 1 and 3 replicas on one RGW bucket,
 * each behind haproxy, in the same run against the same link and the same RGW. Per setup:
 *   cold   N skopeo clients pull one cold image through the link at once: link bytes / unique
 *          bytes, time until every client is done, and (RGW) the longest its transfer lease went
 *          unrenewed as a poller saw it (what a shorter lease ttl would have to outlast);
 *   warm   N curl clients fetch the now stored large layer through haproxy: aggregate MB/s,
 *          beside RGW's own GET throughput for the same object with the same N clients, and
 *          (RGW) the same burst through one more replica set to redirect (storage.redirect:
 *          its 307 followed to RGW, haproxy in front);
 *   prewarm  every replica runs `ferry prewarm --kolla-profile` (Kolla mitaka's mesos profile, 9
 *          made-up images sharing base layers: SCALE_LAYER_MIB/2 base, 60 MiB unique at 64)
 *          against itself, all at once: link bytes / unique bytes, time until every one is done;
 *   kill   (several replicas) a second cold image: the replica holding its transfer is killed
 *          (-9) half way; time until every client is done against the cold time, link bytes, and
 *          the takeover (from the kill until another replica holds the transfer's lease) and the
 *          gap (until 1 MiB more crossed the link): the takeover's own cost, which the burst's time
 *          shows only through the noise of the clients' pulls; and where the link bytes past the
 *          image went: in flight (read by the link from upstream, never delivered: the dead
 *          replica's connections at the kill), lost by the holder (delivered to it, not resumed by
 *          its successor), fetched twice by the successors (past the bytes they lacked: tail
 *          copies), from the replicas' `transfer complete`/`transfer failed` lines;
 *   RSS    peak RSS (VmHWM) of each replica.
 * Not a test: it prints a table. Run: npx tsx bench/scale.ts (see bench/README.md)
 *   SCALE_CLIENTS (30)  SCALE_LAYER_MIB (64)  SCALE_SETUPS (fs-1,rgw-1,rgw-3)
 *   SCALE_WARM_ROUNDS (3)  SCALE_LINK_KIBPS (2048, per connection)  SCALE_LINK_RTT_MS (50)  SCALE_DEADLINE_S (600, per burst)
 *   SCALE_STEPS (cold,warm,prewarm,kill: cold always runs, it is the kill's baseline)
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { PutObjectAclCommand } from '@aws-sdk/client-s3';
import type { S3StorageConfig } from '../lib/config/schema.ts';
import { keys } from '../lib/storage/s3/keys.ts';
import { runFerry } from '../test/e2e/ferry-cli.ts';
import { MESOS_PROFILE, pushMesosProfile } from '../test/e2e/kolla-synthetic.ts';
import { linkConfig, readBlob, startLink, uniqueBlobBytes, type BlobRead } from '../test/e2e/transfer-fixture.ts';
import { startRgw, type Rgw } from '../test/helpers/ceph.ts';
import { ensureBuilt } from '../test/helpers/ferry-entry.ts';
import { buildImage, type BuiltImage, type LayerBlob } from '../test/helpers/oci-image.ts';
import { waitFor } from '../test/helpers/processes.ts';
import { startReferenceRegistry } from '../test/helpers/reference-registry.ts';
import { startReplicas, type Replicas, type ReplicasOptions } from '../test/helpers/replicas.ts';
import { pushImage } from '../test/helpers/skopeo.ts';
import type { FaultProxy } from '../test/fault-proxy/proxy.ts';
import { fanout } from './lib/fanout.ts';
import { skopeoClient } from './lib/link-clients.ts';
import { renderColumns } from './lib/table.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const MiB = 1 << 20;
const env = process.env;
const clients = Number(env.SCALE_CLIENTS ?? 30);
const layerBytes = Number(env.SCALE_LAYER_MIB ?? 64) * MiB;
const setups = (env.SCALE_SETUPS ?? 'fs-1,rgw-1,rgw-3').split(',').filter(Boolean);
const LINK = { rateBytesPerSec: Number(env.SCALE_LINK_KIBPS ?? 2048) * 1024, latencyMs: Number(env.SCALE_LINK_RTT_MS ?? 50) };
const TRANSFER = { minChunkBytes: 4 * MiB, maxChunkBytes: 4 * MiB, minConnections: 4, maxConnections: 4, stallSeconds: 5 };
const WARM_ROUNDS = Number(env.SCALE_WARM_ROUNDS ?? 3);
const PULL_DEADLINE_MS = Number(env.SCALE_DEADLINE_S ?? 600) * 1000;
const steps = new Set((env.SCALE_STEPS ?? 'cold,warm,prewarm,kill').split(','));

function log(msg: string): void {
  process.stderr.write(`[scale] ${msg}\n`);
}

/** Everything a pull of the image moves: manifest, config, layers. */
function imageBytes(image: BuiltImage): number {
  return image.manifest.length + image.config.length + image.layers.reduce((n, l) => n + l.size, 0);
}

interface Burst {
  seconds: number;
  failed: string[];
  linkRatio: number;
}

/** N skopeo pulls of host/repository:v1 at once (each retried until it succeeds or the deadline); link bytes since `before` (default: now). */
async function coldBurst(host: string, repository: string, image: BuiltImage, proxy: FaultProxy, during?: () => Promise<void>, before = proxy.stats.bytesFromUpstream): Promise<Burst> {
  const client = skopeoClient();
  const started = Date.now();
  const failed: string[] = [];
  const one = async (): Promise<void> => {
    for (;;) {
      const left = started + PULL_DEADLINE_MS - Date.now();
      if (left < 1000) return void failed.push('deadline');
      const r = await client.pull(host, repository, 'v1', left);
      if (r.ok) return;
      failed.push(r.error ?? 'failed');
      await delay(1000);
    }
  };
  await Promise.all([...Array.from({ length: clients }, one), during?.()]);
  return { seconds: (Date.now() - started) / 1000, failed, linkRatio: (proxy.stats.bytesFromUpstream - before) / imageBytes(image) };
}

/**
 * The longest time the transfer lease at `key` stayed the same while held, as an observer polling
 * it every 100 ms saw it (seconds): what a lease ttl must outlast under this load, or a follower
 * takes a live holder's transfer over (the holder renews every ttl/3, 1.7 s by default).
 */
function watchRenewals(bucket: { getText(key: string): Promise<string | undefined> }, key: string): { stop(): void; longest(): number | undefined } {
  let stopped = false;
  let longest: number | undefined;
  void (async () => {
    let last: { text: string; since: number } | undefined;
    while (!stopped) {
      const text = await bucket.getText(key).catch(() => undefined);
      const t = performance.now();
      if (text !== undefined && text !== last?.text) {
        if (last && last.text.includes('"held"')) longest = Math.max(longest ?? 0, (t - last.since) / 1000);
        last = { text, since: t };
      }
      await delay(100);
    }
  })();
  return { stop: () => { stopped = true; }, longest: () => longest };
}

/** Every live replica prewarms the Kolla profile from itself, all at once (the CLI, compiled). */
async function prewarmBurst(replicas: Replicas, proxy: FaultProxy, uniqueBytes: number): Promise<Burst> {
  const before = proxy.stats.bytesFromUpstream;
  const started = Date.now();
  const runs = await Promise.all(replicas.replicas.map((r) => runFerry(['prewarm', '-m', r.url, ...MESOS_PROFILE], { compiled: true })));
  const failed = runs.flatMap((r, i) => (r.code === 0 ? [] : [`prewarm of r${i}: exit ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0]}`]));
  return { seconds: (Date.now() - started) / 1000, failed, linkRatio: (proxy.stats.bytesFromUpstream - before) / uniqueBytes };
}

interface SetupResult extends Warm {
  setup: string;
  cold: Burst & { renewalGapSeconds?: number };
  prewarm?: Burst;
  kill?: Burst & { holderBytes: number; gapSeconds?: number; takeoverSeconds?: number; cost: KillCost };
  peakRssMB: (number | undefined)[];
  /** Replicas that died on their own. */
  crashed: string[];
}

/**
 * Where the kill burst's link bytes past the image went (bytes). inFlight: read by the link from
 * upstream and never delivered (the connections the kill cut); successors: what the replicas
 * that carried the layer on fetched of it (their transfer log lines) and resumed from the
 * bucket; holderLost: delivered to the killed holder and not resumed (its memory, its sockets);
 * successorsExtra: fetched past the bytes the successors lacked (tail copies, refetches).
 */
interface KillCost {
  linkBytes: number;
  imageBytes: number;
  inFlight: number;
  successorsFetched: number;
  successorsResumed: number;
  successorTransfers: number;
  tailCopies: number;
  holderLost: number;
  /** Of holderLost: what the holder had written into its partial blob at its last status before the kill, and not resumed (the store's loss). */
  storeLost?: number;
  statusRead?: { ms: number; delivered: number };
  successorsExtra: number;
}

/** Bytes of `digest` the replica at `url` has written into its partial blob (its /status.json), or undefined. */
async function writtenBy(url: string, digest: string): Promise<number | undefined> {
  try {
    const status = (await (await fetch(`${url}/status.json`)).json()) as { transfers: Array<{ digest: string; bytesDone: number }> };
    return status.transfers.find((t) => t.digest === digest)?.bytesDone;
  } catch {
    return undefined;
  }
}

/** The `transfer complete` and `transfer failed` lines of `digest` in the replicas' logs (JSON). */
async function transferLines(logPaths: readonly string[], digest: string): Promise<Array<{ msg: string; linkBytes?: number; resumedBytes?: number; tailCopies?: number }>> {
  const out: Array<{ msg: string; linkBytes?: number; resumedBytes?: number; tailCopies?: number }> = [];
  for (const p of logPaths) {
    for (const line of (await readFile(p, 'utf8').catch(() => '')).split('\n')) {
      if (!line.includes(digest) || !line.includes('"transfer ')) continue;
      try {
        const j = JSON.parse(line) as { msg?: string; digest?: string; linkBytes?: number; resumedBytes?: number; tailCopies?: number };
        if (j.digest === digest && (j.msg === 'transfer complete' || j.msg === 'transfer failed')) out.push({ msg: j.msg, ...j });
      } catch {
        // not a log line of ours
      }
    }
  }
  return out;
}

/** The kill's cost split by cause: `moved` link bytes of the burst, `dropped` of them never delivered. */
async function killCost(logPaths: readonly string[], layer: LayerBlob, image: BuiltImage, moved: number, dropped: number, holderWritten: number | undefined): Promise<KillCost> {
  // The successor logs its line once its commit is done, which may be after the last client's pull.
  let lines = await transferLines(logPaths, layer.digest);
  for (let i = 0; i < 120 && lines.reduce((n, l) => n + (l.linkBytes ?? 0) + (l.resumedBytes ?? 0), 0) < layer.size; i++) {
    await delay(500);
    lines = await transferLines(logPaths, layer.digest);
  }
  const successorsFetched = lines.reduce((n, l) => n + (l.linkBytes ?? 0), 0);
  const successorsResumed = lines.reduce((n, l) => n + (l.resumedBytes ?? 0), 0);
  const imageTotal = imageBytes(image);
  // The image's other blobs cross once (their own link bytes are in the cold figure's 0.1%).
  const holderDelivered = moved - dropped - successorsFetched - (imageTotal - layer.size);
  return {
    linkBytes: moved,
    imageBytes: imageTotal,
    inFlight: dropped,
    successorsFetched,
    successorsResumed,
    successorTransfers: lines.length,
    tailCopies: lines.reduce((n, l) => n + (l.tailCopies ?? 0), 0),
    holderLost: holderDelivered - successorsResumed,
    ...(holderWritten === undefined ? {} : { storeLost: holderWritten - successorsResumed }),
    successorsExtra: successorsFetched - (layer.size - successorsResumed),
  };
}

interface Warm {
  warmMBps: number;
  rgwGetMBps?: number;
  redirectedMBps?: number;
}

/**
 * The warm bursts of the stored layer, WARM_ROUNDS rounds, best of each: through the replicas
 * (haproxy), and on RGW also straight from RGW and through one more replica (behind its own
 * haproxy) on the same bucket with storage.redirect. In turn within each round, so each ratio
 * compares figures of the same minute (the machine's load moves a lot from one to the next).
 */
async function warmBursts(replicas: Replicas, config: ReplicasOptions['config'], setup: string, layer: LayerBlob, rgw: Rgw | undefined, bucket: string | undefined, failed: string[]): Promise<Warm> {
  const path = `/v2/bench/cold/blobs/${layer.digest}`;
  const burst = (url: string, what: string): Promise<number> => fanout(url, clients, layer.size, undefined).then((r) => r.mbPerS, (e: unknown) => {
    // A setup whose replicas crashed in the cold burst has nothing to serve: reported, not thrown.
    failed.push(`${what}: ${String(e).slice(0, 200)}`);
    return Number.NaN;
  });
  const urls: Record<keyof Warm, string | undefined> = { warmMBps: `${replicas.url}${path}`, rgwGetMBps: undefined, redirectedMBps: undefined };
  let redirecting: Replicas | undefined;
  try {
    if (rgw && bucket) {
      // RGW's own GET of the same object, same clients: the layer made readable without a signature.
      const key = keys.blob(layer.digest);
      await rgw.client().send(new PutObjectAclCommand({ Bucket: bucket, Key: key, ACL: 'public-read' }));
      urls.rgwGetMBps = `${rgw.endpoint}/${bucket}/${key}`;
      const storage = { ...(config.storage as S3StorageConfig), redirect: { expirySeconds: 300 } };
      redirecting = await startReplicas({ count: 1, config: { ...config, storage }, compiled: true, name: `bench-scale-${setup}-redirect`, env: rgw.env });
      urls.redirectedMBps = `${redirecting.url}${path}`;
    }
    const best: Warm = { warmMBps: Number.NaN };
    for (let round = 0; round < WARM_ROUNDS; round++) {
      for (const [what, url] of Object.entries(urls) as [keyof Warm, string | undefined][]) {
        if (url === undefined) continue;
        const mbps = await burst(url, what);
        const before = best[what];
        // A failed round (NaN) never hides a measured one.
        if (before === undefined || Number.isNaN(before) || mbps > before) best[what] = mbps;
      }
    }
    return best;
  } finally {
    await redirecting?.stop();
  }
}

async function runSetup(setup: string, rgw: Rgw | undefined, upstreamHost: string, cold: BuiltImage, killed: BuiltImage, kollaBytes: number, seed: number): Promise<SetupResult> {
  const [kind, countText] = setup.split('-') as [string, string];
  const count = Number(countText);
  if ((kind !== 'fs' && kind !== 'rgw') || !(count >= 1)) throw new Error(`SCALE_SETUPS: ${setup} is not fs-N or rgw-N`);
  const proxy = await startLink(upstreamHost, LINK, seed);
  let bucket: string | undefined;
  let replicas: Replicas | undefined;
  try {
    if (kind === 'rgw') bucket = await rgw!.createBucket();
    // info: the kill's cost is read from the replicas' `transfer complete` lines.
    const config = { ...linkConfig(proxy.url, TRANSFER), log: { level: 'info' as const, format: 'json' as const }, ...(bucket ? { storage: rgw!.storageConfig(bucket) } : {}) };
    replicas = await startReplicas({ count, config, compiled: true, name: `bench-scale-${setup}`, ...(rgw ? { env: rgw.env } : {}) });
    log(`${setup}: cold burst, ${clients} clients`);
    const layer = cold.layers[0]!;
    const renewals = bucket ? watchRenewals(rgw!.bucket(bucket, keys.cluster), `leases/transfer-${layer.digest}`) : undefined;
    const coldBurst1: SetupResult['cold'] = await coldBurst(replicas.host, 'bench/cold', cold, proxy).finally(() => renewals?.stop());
    if (renewals?.longest() !== undefined) coldBurst1.renewalGapSeconds = renewals.longest();
    let warm: Warm = { warmMBps: Number.NaN };
    if (steps.has('warm')) {
      log(`${setup}: warm bursts, ${WARM_ROUNDS} rounds`);
      warm = await warmBursts(replicas, config, setup, layer, rgw, bucket, coldBurst1.failed);
    }
    let prewarm: Burst | undefined;
    if (steps.has('prewarm')) {
      log(`${setup}: ferry prewarm of the Kolla profile by ${count} replica(s) at once`);
      prewarm = await prewarmBurst(replicas, proxy, kollaBytes);
    }
    const peakRssMB = (await replicas.peakRss()).map((b) => (b === undefined ? undefined : b / 1e6));
    let kill: SetupResult['kill'];
    if (count > 1 && steps.has('kill')) {
      log(`${setup}: kill -9 of the replica holding the transfer half way`);
      const big = killed.layers[0]!;
      const before = proxy.stats.bytesFromUpstream;
      const droppedBefore = proxy.stats.bytesDropped;
      const moved = (): number => proxy.stats.bytesFromUpstream - before;
      const killNote: string[] = [];
      let gapSeconds: number | undefined;
      let takeoverSeconds: number | undefined;
      let holderWritten: number | undefined;
      /** How long the holder's status took to read, and what the link delivered meanwhile (the status is of some instant in between). */
      let statusRead: KillCost['statusRead'];
      // Replica 0 asks for the layer itself and a tenth of it crosses before the clients start, so
      // it holds the transfer (else the kill would hit a follower, and cost nothing to measure).
      const holder: Promise<BlobRead> = readBlob(replicas.replicas[0]!.url, 'bench/kill', big.digest);
      await waitFor(() => moved() >= big.size / 10, PULL_DEADLINE_MS, 'a tenth of the layer across the link');
      const leaseText = (): Promise<string | undefined> => (bucket ? rgw!.bucket(bucket, keys.cluster).getText(`leases/transfer-${big.digest}`) : Promise.resolve(undefined));
      const heldBy0 = (text: string | undefined): boolean => text?.includes(`-${replicas!.replicas[0]!.pid}-`) === true;
      if (!heldBy0(await leaseText())) killNote.push('kill: replica 0 did not hold the transfer');
      const killHalfway = async (): Promise<void> => {
        await waitFor(() => moved() >= big.size / 2, PULL_DEADLINE_MS, 'half the layer across the link');
        const asked = { at: performance.now(), delivered: proxy.stats.bytesToClient };
        holderWritten = await writtenBy(replicas!.replicas[0]!.url, big.digest);
        statusRead = { ms: performance.now() - asked.at, delivered: proxy.stats.bytesToClient - asked.delivered };
        const killedAt = performance.now();
        const atKill = moved();
        await replicas!.kill9(0);
        const tookOver = bucket
          ? waitFor(async () => !heldBy0(await leaseText()), PULL_DEADLINE_MS, 'another replica holding the transfer').then(() => (takeoverSeconds = (performance.now() - killedAt) / 1000))
          : undefined;
        await waitFor(() => moved() - atKill >= MiB, PULL_DEADLINE_MS, 'the link moving again after the kill');
        gapSeconds = (performance.now() - killedAt) / 1000;
        await tookOver;
      };
      // A replica that died on its own (or a link that never got half way) is reported, not thrown.
      const burst = await coldBurst(replicas.host, 'bench/kill', killed, proxy, () => killHalfway().catch((e: unknown) => void killNote.push(`kill: ${String(e)}`)), before);
      burst.failed.push(...killNote);
      const holderBytes = (await holder).bytes;
      // Every connection closed by now (the burst is over): what the link read and never delivered is all counted.
      const cost = await killCost(replicas.replicas.slice(1).map((r) => r.process.logPath), big, killed, moved(), proxy.stats.bytesDropped - droppedBefore, holderWritten);
      if (statusRead) cost.statusRead = statusRead;
      kill = { ...burst, holderBytes, cost, ...(gapSeconds === undefined ? {} : { gapSeconds }), ...(takeoverSeconds === undefined ? {} : { takeoverSeconds }) };
    }
    return { setup, cold: coldBurst1, ...(prewarm ? { prewarm } : {}), ...warm, ...(kill ? { kill } : {}), peakRssMB, crashed: replicas.crashed() };
  } finally {
    await replicas?.stop();
    await proxy.close();
  }
}

function killCostText(c: KillCost): string {
  const m = (n: number): string => (n / MiB).toFixed(2);
  return `kill: ${m(c.linkBytes - c.imageBytes)} MiB on the link past the ${m(c.imageBytes)} MiB image = ${m(c.inFlight)} in flight at the kill (never delivered)`
    + ` + ${m(c.holderLost)} delivered to the killed holder and not resumed${c.storeLost === undefined ? '' : ` (${m(c.storeLost)} of it written into its partial blob at its last status before the kill${c.statusRead ? `, read in ${c.statusRead.ms.toFixed(0)} ms while ${m(c.statusRead.delivered)} MiB crossed` : ''})`} + ${m(c.successorsExtra)} fetched twice by the successors (${c.tailCopies} tail copies)`
    + `; successors: ${c.successorTransfers} transfer(s), ${m(c.successorsResumed)} MiB resumed, ${m(c.successorsFetched)} MiB fetched`;
}

function render(results: SetupResult[]): string {
  const f = (n: number | undefined, d = 2): string => (n === undefined ? '-' : n.toFixed(d));
  const header = ['setup', 'cold s', 'cold link/unique', 'cold failed', 'cold renewal gap s', 'warm MB/s', 'RGW GET MB/s', 'warm/RGW', 'redirected MB/s', 'redirected/RGW', 'prewarm s', 'prewarm link/unique', 'prewarm failed', 'kill s', 'kill lost', 'kill takeover s', 'kill gap s', 'kill link/unique', 'kill failed', 'peak RSS MB'];
  const lines = results.map((r) => [
    r.setup,
    f(r.cold.seconds, 1),
    f(r.cold.linkRatio, 3),
    String(r.cold.failed.length),
    f(r.cold.renewalGapSeconds, 2),
    f(r.warmMBps, 0),
    f(r.rgwGetMBps, 0),
    r.rgwGetMBps ? f(r.warmMBps / r.rgwGetMBps) : '-',
    f(r.redirectedMBps, 0),
    r.rgwGetMBps && r.redirectedMBps !== undefined ? f(r.redirectedMBps / r.rgwGetMBps) : '-',
    f(r.prewarm?.seconds, 1),
    f(r.prewarm?.linkRatio, 3),
    r.prewarm ? String(r.prewarm.failed.length) : '-',
    f(r.kill?.seconds, 1),
    r.kill ? `${(((r.kill.seconds - r.cold.seconds) / r.cold.seconds) * 100).toFixed(0)}%` : '-',
    f(r.kill?.takeoverSeconds, 2),
    f(r.kill?.gapSeconds, 2),
    f(r.kill?.linkRatio, 3),
    r.kill ? String(r.kill.failed.length) : '-',
    r.peakRssMB.map((m) => (m === undefined ? 'killed' : m.toFixed(0))).join('/'),
  ]);
  return renderColumns(header, lines, (i) => i > 0);
}

async function main(): Promise<void> {
  await ensureBuilt();
  log(`building images (${layerBytes / MiB} MiB layer)`);
  const [cold, killed] = await Promise.all([
    buildImage({ layers: [layerBytes, MiB], seed: 'bench-scale-cold', format: 'docker' }),
    buildImage({ layers: [layerBytes, MiB], seed: 'bench-scale-kill', format: 'docker' }),
  ]);
  const upstream = await startReferenceRegistry({ name: 'bench-scale-upstream' });
  const rgw = setups.some((s) => s.startsWith('rgw')) ? await startRgw({ objectstore: 'bluestore' }) : undefined;
  const results: SetupResult[] = [];
  try {
    await pushImage(cold, upstream.host, 'bench/cold', 'v1');
    await pushImage(killed, upstream.host, 'bench/kill', 'v1');
    const kolla = await pushMesosProfile(upstream.host, (x) => (x === 'base' ? layerBytes / 2 : x.endsWith('-base') ? layerBytes / 8 : layerBytes / 32), 'bench-scale-kolla');
    const kollaBytes = uniqueBlobBytes(kolla.values());
    for (const [i, setup] of setups.entries()) results.push(await runSetup(setup, rgw, upstream.host, cold, killed, kollaBytes, i + 1));
  } finally {
    await rgw?.stop();
    await upstream.stop();
  }
  const link = `link ${LINK.rateBytesPerSec / 1024} KiB/s per connection, ${LINK.latencyMs} ms RTT, ferry ${TRANSFER.maxConnections} connections per replica`;
  process.stdout.write(`scale-out: ${clients} clients, image ${(imageBytes(cold) / MiB).toFixed(1)} MiB, ${link}\n\n${render(results)}\n`);
  for (const r of results) {
    const errs = [...r.cold.failed, ...(r.prewarm?.failed ?? []), ...(r.kill?.failed ?? [])];
    if (errs.length > 0) process.stdout.write(`${r.setup}: client failures (retried): ${[...new Set(errs)].slice(0, 5).join(' | ')}\n`);
    if (r.kill) process.stdout.write(`${r.setup}: ${killCostText(r.kill.cost)}\n`);
    if (r.crashed.length > 0) process.stdout.write(`${r.setup}: replicas that crashed: ${r.crashed.join(', ')} (their logs: test-output/bench-scale-${r.setup}-r*)\n`);
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
