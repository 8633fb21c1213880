/**
 * Pulls over bad links, by profile (bench/lib/link-profiles.ts): a FaultProxy plays the link
 * (caps per connection and in total, RTT, resets, stalls, flipped bytes, a relay going dark; all
 * seeded), a client (docker or skopeo) pulls an image through ferry, straight from the registry
 * and through a ferry relay, and through distribution 2.8 in proxy mode behind an identical link.
 * Each run prints goodput as % of the link's cap, link bytes / image bytes, failed client pulls
 * and peak RSS; then a table per profile and seed, and the worst and best seed per profile. The
 * default profile also kills ferry with -9 at half of its largest layer and counts the bytes
 * fetched again (`--chains kill`: that alone). Prints figures; not a test.
 *
 *   npx tsx bench/link.ts [--profile NAME[,NAME...]|all] [--seeds 1,2,3] [--skip-reference]
 *                         [--reference-seeds 1] [--reference-minutes N] [--chains direct,relay,relays,reference,kill] [--list]
 *                         [--timeline]
 *
 * --timeline: after each run over one link with a per-connection cap, where the cap was lost (bench/lib/link-timeline.ts).
 *
 * Without --profile it runs the default profile (the original bench/link.ts) with seed 1.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { transferSchema } from '../lib/config/schema.ts';
import { StorePaths } from '../lib/storage/paths.ts';
import { chunkSizeFor } from '../lib/transfer/chunk-plan.ts';
import { loadJournal } from '../lib/storage/partial-journal.ts';
import type { FaultProxy, Faults } from '../test/fault-proxy/proxy.ts';
import { buildFerry } from '../test/helpers/ferry-entry.ts';
import { blobsOfImage, linkConfig, readBlob, startFerryProcess, startLink, startUpstream, type FerryProcess, type Upstream } from '../test/e2e/transfer-fixture.ts';
import { UPSTREAM, startDirectChain, startReferenceChain, startRelayChain, startRelaysChain, type RunningChain } from './lib/link-chains.ts';
import { dockerClient, skopeoClient, timedPull, type PullClient } from './lib/link-clients.ts';
import { IMAGES, PROFILES, chainCap, describeLink, profileByName, type Cap, type ChainKind, type ImageName, type LinkProfile } from './lib/link-profiles.ts';
import { renderColumns } from './lib/table.ts';
import { timeline } from './lib/link-timeline.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const MB = 1e6;
const mb = (n: number): string => (n / MB).toFixed(1);
const seconds = (ms: number): string => (ms / 1000).toFixed(1);
/** The connections ferry may use on one link: its upstream's, bounded by the transfer's cap. */
const CONNECTIONS = Math.min(UPSTREAM.connections, transferSchema.parse({}).maxConnections);

type ChainLabel = ChainKind | 'reference';

interface RunRow {
  profile: string;
  seed: number;
  chain: ChainLabel;
  client: string;
  finished: boolean;
  wallMs: number;
  /** Image bytes (or, unfinished, bytes of complete blobs) / wall time. */
  goodput: number;
  cap: Cap;
  /** Bytes the far end sent into the link(s) / image bytes. */
  linkRatio: number;
  failed: number;
  rss?: number;
  note: string;
  /** The wall time at the cap (as it was, with a relay gone dark half way). */
  idealMs: number;
}

function pct(row: RunRow): number {
  return (row.goodput / row.cap.bytesPerSec) * 100;
}

/** Prints the links' delivery rate every few seconds to stderr, so a long run shows life. */
function watch(label: string, links: FaultProxy[], total: number): () => void {
  const sum = (f: (p: FaultProxy) => number): number => links.reduce((n, p) => n + f(p), 0);
  // Several relays: every 2 s (a cold relay filling, a dark one, show within seconds).
  const everyMs = links.length > 1 ? 2000 : 5000;
  let last = links.map((p) => p.stats.bytesToClient);
  const t = setInterval(() => {
    const each = links.map((p) => p.stats.bytesToClient);
    const now = each.reduce((a, b) => a + b, 0);
    const rates = each.map((n, i) => mb(((n - (last[i] ?? 0)) * 1000) / everyMs));
    const per = links.length > 1 ? ` (${rates.join(' + ')})` : '';
    process.stderr.write(`  [${label}] ${mb(now)} / ${mb(total)} MB across the link, ${mb(((now - last.reduce((a, b) => a + b, 0)) * 1000) / everyMs)} MB/s${per}, ${sum((p) => p.stats.resets)} resets, ${sum((p) => p.stats.stalls)} stalls, ${sum((p) => p.stats.corruptions)} flips\n`);
    last = each;
  }, everyMs);
  return () => clearInterval(t);
}

/** Turns the relays marked darkAtHalf dark once half the image has crossed all links; reports when. */
function darkAtHalf(profile: LinkProfile, links: FaultProxy[], imageBytes: number, started: number): { stop(): void; at(): number | undefined } {
  let at: number | undefined;
  const marked = (profile.relays ?? []).map((r, i) => (r.darkAtHalf ? links[i] : undefined)).filter((p): p is FaultProxy => p !== undefined);
  const t = setInterval(() => {
    if (links.reduce((n, p) => n + p.stats.bytesToClient, 0) < imageBytes / 2) return;
    for (const p of marked) p.setFaults({ dark: true });
    at = performance.now() - started;
    process.stderr.write(`  [relays] ${marked.length} relay link(s) dark after ${seconds(at)} s\n`);
    clearInterval(t);
  }, 50);
  if (marked.length === 0) clearInterval(t);
  return { stop: () => clearInterval(t), at: () => at };
}

function startChain(chain: ChainLabel, profile: LinkProfile, up: Upstream, seed: number): Promise<RunningChain> {
  const link = profile.link;
  if (chain === 'relays') return startRelaysChain(up, (profile.relays ?? []).map((r) => r.link), seed);
  if (!link) throw new Error(`profile ${profile.name} has no single link for the ${chain} chain`);
  if (chain === 'direct') return startDirectChain(up, link, seed);
  if (chain === 'relay') return startRelayChain(up, link, seed);
  return startReferenceChain(up, link, seed);
}

async function measure(profile: LinkProfile, seed: number, chain: ChainLabel, up: Upstream, client: PullClient, deadlineMs: number, traced = false): Promise<RunRow> {
  const blobs = blobsOfImage(up.image);
  const imageBytes = blobs.reduce((n, b) => n + b.size, 0) + up.image.manifest.length;
  const cap = chainCap(profile, chain === 'reference' ? 'direct' : chain, CONNECTIONS);
  const running = await startChain(chain, profile, up, seed);
  if (traced) for (const l of running.links) l.trace();
  const stopWatch = watch(`${profile.name} ${chain}`, running.links, imageBytes);
  const started = performance.now();
  const dark = darkAtHalf(profile, running.links, imageBytes, started);
  let row: RunRow;
  try {
    const t = await timedPull(client, running.url, up.repository, up.tag, deadlineMs);
    const useful = t.finished ? imageBytes : await running.held(blobs);
    const goodput = (useful * 1000) / t.wallMs;
    const notes: string[] = [];
    if (!t.finished) notes.push(`NOT finished: ${mb(useful)} of ${mb(imageBytes)} MB of blobs complete`);
    if (t.errors.length > 0) notes.push(`first error: ${t.errors[0]}`);
    const darkAt = dark.at();
    let idealMs = (imageBytes * 1000) / cap.bytesPerSec;
    if (darkAt !== undefined) {
      // The cap as it was: the whole sum for the first half of the image, without the dark relays for the second.
      const rest = chainCap({ ...profile, relays: (profile.relays ?? []).filter((r) => !r.darkAtHalf) }, 'relays', CONNECTIONS).bytesPerSec;
      idealMs = (imageBytes / 2 / cap.bytesPerSec + imageBytes / 2 / rest) * 1000;
      notes.push(`dark at ${seconds(darkAt)} s; ${((idealMs / t.wallMs) * 100).toFixed(1)}% of the cap as it was (${mb(cap.bytesPerSec)} then ${mb(rest)} MB/s)`);
    }
    row = {
      profile: profile.name, seed, chain, client: client.name, finished: t.finished, wallMs: t.wallMs, goodput, cap,
      linkRatio: 0, failed: t.failed, rss: await running.peakRss(), note: notes.join('; '), idealMs,
    };
    const link = running.links[0];
    if (traced && running.links.length === 1 && link?.traceEvents && profile.link?.rateBytesPerSec) {
      console.log(timeline({ events: link.traceEvents, client: t.requests, connections: CONNECTIONS, perConnection: profile.link.rateBytesPerSec, requests: true }));
    }
  } finally {
    dark.stop();
    stopWatch();
    await running.stop();
  }
  // Read after the servers stopped: everything the far end sent, in flight at the end included.
  row.linkRatio = running.links.reduce((n, p) => n + p.stats.bytesFromUpstream, 0) / imageBytes;
  if (running.links.length > 1) row.note = [`MB per relay ${running.links.map((p) => mb(p.stats.bytesToClient)).join('/')}`, row.note].filter(Boolean).join('; ');
  const s = running.links.reduce((acc, p) => ({ resets: acc.resets + p.stats.resets, stalls: acc.stalls + p.stats.stalls, flips: acc.flips + p.stats.corruptions, connections: acc.connections + p.stats.connections }), { resets: 0, stalls: 0, flips: 0, connections: 0 });
  console.log(`  ${chain}: ${linkBytesPast(running.links, imageBytes)}`);
  console.log(`  ${chain}: ${row.finished ? 'finished' : 'did NOT finish'} in ${seconds(row.wallMs)} s (first request to last byte at the client): ${mb(row.goodput)} MB/s = ${pct(row).toFixed(1)}% of the cap; link bytes ${row.linkRatio.toFixed(3)}x the image; ${row.failed} failed ${client.name} pulls; peak RSS ${row.rss ? `${mb(row.rss)} MB` : '-'}; link: ${s.connections} connections, ${s.resets} resets, ${s.stalls} stalls, ${s.flips} flipped bytes${row.note ? `; ${row.note}` : ''}`);
  return row;
}

/**
 * Where the link bytes past the image went, from the links' own counts: dropped at the link's
 * resets, dropped when a connection was closed by ferry (a split, the tail copy that lost, a stall
 * cut, a drained relay) or the far end, and delivered to ferry but not kept (headers, what came
 * unread before a cut or a reset, bytes a tail copy fetched twice).
 */
function linkBytesPast(links: FaultProxy[], imageBytes: number): string {
  const sum = (f: (p: FaultProxy) => number): number => links.reduce((n, p) => n + f(p), 0);
  const past = sum((p) => p.stats.bytesFromUpstream) - imageBytes;
  const atResets = sum((p) => p.stats.bytesDroppedAtResets);
  const atCloses = sum((p) => p.stats.bytesDropped) - atResets;
  const unkept = sum((p) => p.stats.bytesToClient) - imageBytes;
  return `link bytes past the image ${mb(past)} MB = ${mb(atResets)} dropped at the link's resets + ${mb(atCloses)} dropped at connections closed (ferry's cuts: splits, tail copies, stall cuts, drained relays) + ${mb(unkept)} delivered and not kept (headers, unread at a cut or reset, fetched twice)`;
}

/** Connections carrying ranges for ferry's transfers now, and the bytes they wrote, from its status document. */
async function transferConnections(url: string): Promise<{ text: string; written: number | undefined }> {
  try {
    const status = (await (await fetch(`${url}/status.json`)).json()) as { transfers: Array<{ connections: number; concurrency: number; bytesDone: number }> };
    return {
      text: status.transfers.map((t) => `${t.connections} (link budget ${t.concurrency})`).join(', ') || '0',
      written: status.transfers.reduce((n, t) => n + t.bytesDone, 0),
    };
  } catch (err) {
    return { text: `unknown (${String(err)})`, written: undefined };
  }
}

async function waitUntil(fn: () => Promise<boolean> | boolean, pollMs = 100): Promise<number> {
  while (!(await fn())) await new Promise((r) => setTimeout(r, pollMs));
  return performance.now();
}

/** kill -9 of ferry at half of the largest layer (an HTTP GET of the blob), restart on the same data dir; returns the cost in chunks. */
async function killAtHalf(up: Upstream, link: Faults, seed: number): Promise<string> {
  const layer = [...up.image.layers].sort((a, b) => b.size - a.size)[0]!;
  const chunk = chunkSizeFor(layer.size, transferSchema.parse({}));
  console.log(`  kill -9 of ferry at 50% of the ${mb(layer.size)} MB layer (HTTP GET of the blob), restart on the same data dir`);
  const proxy = await startLink(up.registry.host, link, seed + 1);
  const data = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-kill-'));
  const config = linkConfig(proxy.url, undefined, UPSTREAM);
  let ferry: FerryProcess = await startFerryProcess(config, data, 'bench-link-kill-1', { compiled: true });
  const stopWatch = watch('kill -9', [proxy], layer.size);
  try {
    const started = performance.now();
    const first = readBlob(ferry.url, up.repository, layer.digest).catch(() => undefined);
    await waitUntil(() => proxy.stats.bytesToClient >= layer.size / 2, 50);
    const deliveredBeforeStatus = proxy.stats.bytesToClient;
    const { text: busy, written } = await transferConnections(ferry.url);
    const droppedBefore = proxy.stats.bytesDropped;
    const openAtKill = proxy.openConnections;
    await ferry.kill9();
    await first;
    await waitUntil(() => proxy.openConnections === 0, 20);
    const atKill = { ...proxy.stats };
    const droppedByKill = atKill.bytesDropped - droppedBefore;
    const journal = new StorePaths(data).partial(layer.digest, 'journal');
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
    const piece = transferSchema.parse({}).pieceBytes;
    const lost = atKill.bytesToClient - kept;
    console.log(`    killed with ${mb(atKill.bytesToClient)} MB delivered to ferry, ${mb(kept)} MB of it in ferry's journal; whole layer verified after ${seconds(performance.now() - started)} s`);
    console.log(`    delivered to ferry and not in its journal: ${(lost / 1024).toFixed(0)} KiB = ${(lost / piece).toFixed(2)} pieces of ${piece / 1024} KiB (target <= 1 piece; response headers and what sat in ferry's socket buffers included)`);
    if (written !== undefined) {
      const kib = (n: number): string => `${(n / 1024).toFixed(0)} KiB`;
      console.log(`    at ferry's last status before the kill it had written ${kib(written)}, the link had delivered ${kib(deliveredBeforeStatus)} (${kib(deliveredBeforeStatus - written)} not yet written: headers, socket and body buffers); the journal kept ${kib(kept - written)} more than that status said written`);
    }
    console.log(`    cost of the kill: ${mb(cost)} MB = ${chunks(cost)} of ${mb(chunk)} MB (target <= 2 chunks) = ${mb(deliveredTwice)} MB ferry had received and fetched again (${chunks(deliveredTwice)}; headers included) + ${mb(droppedByKill)} MB the link held in flight at the kill (${chunks(droppedByKill)}; ${openAtKill} connections open, ${busy} carrying ranges)`);
    console.log(`    gross, with the resets of both runs: ${mb(gross)} MB = ${chunks(gross)} read twice from upstream (the kill's ${mb(cost)} MB + ${mb(droppedByResets)} MB the link dropped at ${end.resets} resets)`);
    return `kill -9: ${(lost / piece).toFixed(2)} pieces lost by ferry; ${chunks(cost)} fetched again (${chunks(gross)} gross)`;
  } finally {
    stopWatch();
    await ferry.stop();
    await proxy.close();
    await rm(data, { recursive: true, force: true });
  }
}

const HEADER = ['profile', 'seed', 'chain', 'client', 'wall s', 'MB/s', '% of cap', 'link/image', 'failed pulls', 'peak RSS MB', 'note'];

function tableLine(r: RunRow): string[] {
  return [r.profile, String(r.seed), r.chain, r.client, `${seconds(r.wallMs)}${r.finished ? '' : ' DNF'}`, mb(r.goodput), pct(r).toFixed(1),
    r.linkRatio.toFixed(3), String(r.failed), r.rss ? mb(r.rss) : '-', r.note];
}

function table(rows: RunRow[]): string {
  return renderColumns(HEADER, rows.map(tableLine), (i) => i >= 4 && i <= 9);
}

/**
 * What a relay going dark cost, per seed run with and without it (relays3 beside relays3-steady):
 * the time the dark run took beyond the steady one, less what the relay's lost capacity alone
 * explains (the difference of their times at the cap), as a share of the dark run's time.
 */
function darkCosts(rows: RunRow[]): string[] {
  return rows.filter((r) => r.note.includes('dark at')).flatMap((r) => {
    const steady = rows.find((s) => s.profile === `${r.profile}-steady` && s.seed === r.seed && s.chain === r.chain);
    if (!steady) return [];
    const extra = r.wallMs - steady.wallMs - (r.idealMs - steady.idealMs);
    return [`${r.profile} seed ${r.seed}: the dark relay cost ${seconds(extra)} s = ${((extra / r.wallMs) * 100).toFixed(1)}% of the time (${seconds(r.wallMs)} s against ${seconds(steady.wallMs)} s without it; its lost capacity alone explains ${seconds(r.idealMs - steady.idealMs)} s)`];
  });
}

/** Worst and best seed per profile and chain. */
function summary(rows: RunRow[]): string {
  const groups = new Map<string, RunRow[]>();
  for (const r of rows) groups.set(`${r.profile} ${r.chain}`, [...(groups.get(`${r.profile} ${r.chain}`) ?? []), r]);
  const lines = [...groups.entries()].map(([key, g]) => {
    const byPct = [...g].sort((a, b) => pct(a) - pct(b));
    const worst = byPct[0]!;
    const best = byPct.at(-1)!;
    const ratios = g.map((r) => r.linkRatio);
    const rss = Math.max(...g.map((r) => r.rss ?? 0));
    return [key, String(g.length), `${pct(worst).toFixed(1)} (seed ${worst.seed})`, `${pct(best).toFixed(1)} (seed ${best.seed})`,
      `${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}`, `${g.reduce((n, r) => n + r.failed, 0)}`,
      `${g.filter((r) => !r.finished).length}`, rss ? mb(rss) : '-'];
  });
  return renderColumns(['profile chain', 'seeds', 'worst % of cap', 'best % of cap', 'link/image', 'failed pulls', 'not finished', 'max peak RSS MB'], lines, (i) => i >= 1);
}

function listProfiles(): void {
  for (const p of PROFILES) {
    const chains = p.chains.map((c) => `${c} (cap: ${chainCap(p, c, CONNECTIONS).which})`).join('; ');
    console.log(`${p.name}\n  ${p.about}\n  client ${p.client}; chains: ${chains}${p.referenceMinutes ? `; reference for at most ${p.referenceMinutes} min` : ''}${p.kill9 ? '; kill -9' : ''}`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      profile: { type: 'string', multiple: true }, list: { type: 'boolean' }, seeds: { type: 'string' }, seed: { type: 'string' },
      'skip-reference': { type: 'boolean' }, 'reference-minutes': { type: 'string' }, 'reference-seeds': { type: 'string' },
      chains: { type: 'string' }, timeline: { type: 'boolean' },
    },
  });
  if (values.list) return listProfiles();
  const names = (values.profile ?? ['default']).flatMap((p) => p.split(',')).filter(Boolean);
  const profiles = names.includes('all') ? PROFILES : names.map(profileByName);
  const integers = (flag: string, text: string): number[] => {
    const list = text.split(',').map(Number);
    if (list.some((s) => !Number.isInteger(s))) throw new Error(`${flag} takes integers, e.g. ${flag} 1,2,3 (got ${text})`);
    return list;
  };
  const seeds = integers('--seeds', values.seeds ?? values.seed ?? '1');
  const chosen = new Set((values.chains ?? 'direct,relay,relays,reference').split(','));
  if (values['skip-reference']) chosen.delete('reference');
  // The reference is slow and does not change with ferry: it may run for some seeds only.
  const referenceSeeds = values['reference-seeds'] === undefined ? seeds : integers('--reference-seeds', values['reference-seeds']);
  await buildFerry();
  const upstreams = new Map<ImageName, Upstream>();
  const clients = { docker: dockerClient(), skopeo: skopeoClient() };
  const rows: RunRow[] = [];
  try {
    for (const profile of profiles) {
      let up = upstreams.get(profile.image);
      if (!up) {
        const spec = IMAGES[profile.image];
        up = await startUpstream({ layers: spec.layers, seed: spec.seed, repository: spec.repository, tag: 'v1', runnable: spec.runnable, ...('content' in spec ? { content: spec.content } : {}) });
        upstreams.set(profile.image, up);
      }
      const imageBytes = blobsOfImage(up.image).reduce((n, b) => n + b.size, 0) + up.image.manifest.length;
      for (const seed of seeds) {
        console.log(`\n== ${profile.name}, seed ${seed}: ${profile.about}`);
        console.log(`   image ${up.repository}: ${up.image.layers.length} layers, ${mb(imageBytes)} MB; link: ${profile.link ? describeLink(profile.link) : (profile.relays ?? []).map((r) => describeLink(r.link)).join(' | ')}`);
        const mine: RunRow[] = [];
        const client = clients[profile.client];
        for (const chain of profile.chains.filter((c) => chosen.has(c))) {
          try {
            mine.push(await measure(profile, seed, chain, up, client, profile.deadlineSeconds * 1000, values.timeline === true));
          } catch (e) {
            console.log(`  ${chain}: not run: ${(e as Error).message}`);
          }
        }
        if (profile.kill9 && (chosen.has('direct') || chosen.has('kill'))) {
          const note = await killAtHalf(up, profile.link!, seed);
          const direct = mine.find((r) => r.chain === 'direct');
          if (direct) direct.note = [direct.note, note].filter(Boolean).join('; ');
        }
        if (profile.referenceMinutes && profile.link && chosen.has('reference') && referenceSeeds.includes(seed)) {
          const minutes = Number(values['reference-minutes'] ?? profile.referenceMinutes);
          mine.push(await measure(profile, seed, 'reference', up, client, minutes * 60_000));
        }
        rows.push(...mine);
        console.log(`\n${table(mine)}`);
      }
    }
  } finally {
    for (const c of Object.values(clients)) await c.close();
    for (const up of upstreams.values()) await up.stop();
  }
  console.log(`\nAll runs (cap = ${CONNECTIONS} connections x the per-connection cap or the aggregate cap, whichever is lower; the sum of the relays' caps for several relays):\n${table(rows)}`);
  console.log(`\nWorst and best seed per profile and chain:\n${summary(rows)}`);
  const dark = darkCosts(rows);
  if (dark.length > 0) console.log(`\nWhat a relay going dark cost (target < 5% of the time):\n${dark.join('\n')}`);
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
