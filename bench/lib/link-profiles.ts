/**
 * The links bench/link.ts plays, by name: what the link does (FaultProxy faults, seeded), which
 * image crosses it, which client pulls it, through which chains. Sizes and caps are scaled so one
 * profile and seed takes a few minutes at most on a small machine.
 */
import type { Faults } from '../../test/fault-proxy/proxy.ts';
import type { SeededContent } from '../../test/helpers/tar-gz-layer.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const MB = 1e6;

export interface ImageSpec {
  /** Layer sizes, largest first. */
  layers: number[];
  /** Seed of the layers' random content (test/helpers/oci-image.ts caches them by it). */
  seed: string;
  repository: string;
  /** A tiny runnable layer on top (docker run works); without it the image is exactly `layers`. */
  runnable: boolean;
  /**
   * random (default): one file of random bytes per layer, stored gzip (level 0): nothing in it
   * says where a flipped byte is. like-files: files of 256 B to 256 KiB that gzip -6 as real
   * layers do (~3.3x; test/helpers/tar-gz-layer.ts:seededLikeFiles); layer sizes are then the
   * bytes before compression.
   */
  content?: SeededContent;
}

export const IMAGES = {
  /** The original bench/link.ts image: 512 MiB in 8 layers plus a runnable one. */
  default: { layers: [256, 128, 64, 32, 16, 8, 4, 4].map((n) => n * MiB), seed: 'bench-link', repository: 'bench/link', runnable: true },
  /** ~80 MiB, 5 layers: short enough that start-up, per-blob round trips and tails show. */
  small: { layers: [32, 24, 12, 8, 4].map((n) => n * MiB), seed: 'bench-link-small', repository: 'bench/small', runnable: false },
  /** ~80 MiB, 5 layers, as `small` but realistic: compressible files, gzip -6 (265 MiB of files). */
  'small-files': { layers: [106, 80, 40, 26, 13].map((n) => n * MiB), seed: 'bench-link-small-files', repository: 'bench/small-files', runnable: false, content: 'like-files' },
  /** ~423 MiB, 7 layers. */
  large: { layers: [160, 128, 64, 40, 20, 8, 3].map((n) => n * MiB), seed: 'bench-link-large', repository: 'bench/large', runnable: false },
} satisfies Record<string, ImageSpec>;

export type ImageName = keyof typeof IMAGES;

/**
 * direct: client -> ferry -> link -> registry. relay: client -> ferry -> link -> ferry relay ->
 * registry. relays: one link and one ferry relay per entry of `relays`, all for one upstream.
 */
export type ChainKind = 'direct' | 'relay' | 'relays';

export interface RelayLink {
  link: Faults;
  /** Goes dark (test/fault-proxy's `dark`: nothing either way, for good) when half the image has crossed all links. */
  darkAtHalf?: boolean;
}

export interface LinkProfile {
  name: string;
  about: string;
  image: ImageName;
  client: 'docker' | 'skopeo';
  /** The link of the direct and relay chains (and of the reference). */
  link?: Faults;
  /** The links of the `relays` chain, one per relay. */
  relays?: RelayLink[];
  chains: ChainKind[];
  /** distribution 2.8 in proxy mode behind an identical link, pulled by the same client, for at most this long. */
  referenceMinutes?: number;
  /** A chain whose client has not got the whole image by then is reported as not finished. */
  deadlineSeconds: number;
  /** kill -9 of ferry at half of the largest layer, restart, and the bytes fetched again (direct chain). */
  kill9?: boolean;
}

/** The links of the three relays of relays3 and relays3-steady: unequal caps and round trips. */
const RELAYS3: Faults[] = [
  { rateBytesPerSec: 1 * MiB, aggregateBytesPerSec: 8 * MiB, latencyMs: 150, resetMeanBytes: 32 * MiB },
  { rateBytesPerSec: 512 * KiB, aggregateBytesPerSec: 4 * MiB, latencyMs: 300 },
  { rateBytesPerSec: 256 * KiB, aggregateBytesPerSec: 2 * MiB, latencyMs: 400 },
];

/** Flipped bytes over realistic layers; flips-random is the same over random ones. */
const FLIPS: LinkProfile = {
  name: 'flips',
  about: '80 MiB of realistic layers (files gzipped -6) by skopeo; 512 KiB/s per connection, 8 MiB/s in total, 200 ms RTT, a flipped byte every ~20 MiB per connection (0.05 per MiB)',
  image: 'small-files',
  client: 'skopeo',
  link: { rateBytesPerSec: 512 * KiB, aggregateBytesPerSec: 8 * MiB, latencyMs: 200, corruptPerMiB: 0.05 },
  chains: ['direct', 'relay'],
  referenceMinutes: 1.5,
  deadlineSeconds: 150,
};

export const PROFILES: LinkProfile[] = [
  {
    name: 'default',
    about: 'the original run: 512 MiB image by docker, 1 MB/s per connection, 16 MB/s in total, 200 ms RTT, a reset every ~32 MB per connection; then kill -9 of ferry at half of the 256 MiB layer',
    image: 'default',
    client: 'docker',
    link: { rateBytesPerSec: 1 * MB, aggregateBytesPerSec: 16 * MB, latencyMs: 200, resetMeanBytes: 32 * MB },
    chains: ['direct'],
    referenceMinutes: 10,
    deadlineSeconds: 600,
    kill9: true,
  },
  {
    name: 'small-skopeo',
    about: '80 MiB, 5 layers, skopeo to dir: (one layer at a time); 512 KiB/s per connection, 8 MiB/s in total, 300 ms RTT',
    image: 'small',
    client: 'skopeo',
    link: { rateBytesPerSec: 512 * KiB, aggregateBytesPerSec: 8 * MiB, latencyMs: 300 },
    chains: ['direct', 'relay'],
    referenceMinutes: 1.5,
    deadlineSeconds: 150,
  },
  {
    name: 'small-docker',
    about: '80 MiB, 5 layers, docker pull; 256 KiB/s per connection and nothing else (no total cap), 400 ms RTT',
    image: 'small',
    client: 'docker',
    link: { rateBytesPerSec: 256 * KiB, latencyMs: 400 },
    chains: ['direct', 'relay'],
    referenceMinutes: 1.5,
    deadlineSeconds: 150,
  },
  {
    name: 'stalls',
    about: '80 MiB by skopeo; 1 MiB/s per connection, 8 MiB/s in total, 200 ms RTT, a reset every ~32 MiB and a 20 s stall every ~16 MiB per connection',
    image: 'small',
    client: 'skopeo',
    link: { rateBytesPerSec: 1 * MiB, aggregateBytesPerSec: 8 * MiB, latencyMs: 200, resetMeanBytes: 32 * MiB, stallMeanBytes: 16 * MiB, stallMs: 20_000 },
    chains: ['direct', 'relay'],
    referenceMinutes: 1.5,
    deadlineSeconds: 150,
  },
  {
    name: 'stalls-forever',
    about: '80 MiB by docker; 512 KiB/s per connection, 8 MiB/s in total, 250 ms RTT, a stall that never ends (longer than any timer) every ~24 MiB per connection',
    image: 'small',
    client: 'docker',
    link: { rateBytesPerSec: 512 * KiB, aggregateBytesPerSec: 8 * MiB, latencyMs: 250, stallMeanBytes: 24 * MiB, stallMs: Infinity },
    chains: ['direct', 'relay'],
    referenceMinutes: 1.5,
    deadlineSeconds: 150,
  },
  FLIPS,
  {
    ...FLIPS,
    name: 'flips-random',
    about: 'flips over layers of random bytes (stored gzip: nothing in a layer says where a flip is, as with zstd or incompressible content); 80 MiB by skopeo; 512 KiB/s per connection, 8 MiB/s in total, 200 ms RTT, a flipped byte every ~20 MiB per connection (0.05 per MiB)',
    image: 'small',
  },
  {
    name: 'large',
    about: '423 MiB, 7 layers, docker pull; 1 MiB/s per connection, 16 MiB/s in total, 150 ms RTT, a reset every ~32 MiB per connection',
    image: 'large',
    client: 'docker',
    link: { rateBytesPerSec: 1 * MiB, aggregateBytesPerSec: 16 * MiB, latencyMs: 150, resetMeanBytes: 32 * MiB },
    chains: ['direct', 'relay'],
    referenceMinutes: 1.5,
    deadlineSeconds: 240,
  },
  {
    name: 'relays3',
    about: '423 MiB by docker over 3 relays of one upstream with unequal links (8, 4 and 2 MiB/s in total; 150, 300, 400 ms RTT); the 4 MiB/s one goes dark when half the image has crossed',
    image: 'large',
    client: 'docker',
    relays: RELAYS3.map((link, i) => ({ link, ...(i === 1 ? { darkAtHalf: true } : {}) })),
    chains: ['relays'],
    deadlineSeconds: 240,
  },
  {
    name: 'relays3-steady',
    about: 'relays3 with no relay going dark: what three relays give together (issue 12: >= 90% of the sum of their caps), beside which relays3 shows what the dark one costs',
    image: 'large',
    client: 'docker',
    relays: RELAYS3.map((link) => ({ link })),
    chains: ['relays'],
    deadlineSeconds: 240,
  },
];

export function profileByName(name: string): LinkProfile {
  const p = PROFILES.find((x) => x.name === name);
  if (!p) throw new Error(`no profile ${name} (--list shows them)`);
  return p;
}

export interface Cap {
  bytesPerSec: number;
  /** Which bound it is, e.g. "aggregate cap" or "32 connections x 0.26 MB/s". */
  which: string;
}

/** The most one link lets ferry move: its aggregate cap, or its per-connection cap times the connections ferry may use. */
export function capOf(link: Faults, connections: number): Cap {
  const perConnection = (link.rateBytesPerSec ?? Infinity) * connections;
  const aggregate = link.aggregateBytesPerSec ?? Infinity;
  if (aggregate <= perConnection) return { bytesPerSec: aggregate, which: `aggregate cap ${(aggregate / MB).toFixed(2)} MB/s` };
  return { bytesPerSec: perConnection, which: `${connections} connections x ${((link.rateBytesPerSec ?? 0) / MB).toFixed(3)} MB/s = ${(perConnection / MB).toFixed(2)} MB/s` };
}

/** The cap of a chain: of its one link, or the sum of its relays' links. */
export function chainCap(profile: LinkProfile, chain: ChainKind, connections: number): Cap {
  if (chain !== 'relays') {
    if (!profile.link) throw new Error(`profile ${profile.name} has no single link for the ${chain} chain`);
    return capOf(profile.link, connections);
  }
  const caps = (profile.relays ?? []).map((r) => capOf(r.link, connections));
  return { bytesPerSec: caps.reduce((n, c) => n + c.bytesPerSec, 0), which: `sum of ${caps.length} relays' caps (${caps.map((c) => c.which).join(' + ')})` };
}

export function describeLink(f: Faults): string {
  const parts: string[] = [];
  const rate = (n: number): string => (n >= MiB && n % MiB === 0 ? `${n / MiB} MiB/s` : n % KiB === 0 && n < MiB ? `${n / KiB} KiB/s` : `${(n / MB).toFixed(2)} MB/s`);
  const size = (n: number): string => (n % MiB === 0 ? `${n / MiB} MiB` : `${(n / MB).toFixed(1)} MB`);
  if (f.rateBytesPerSec) parts.push(`${rate(f.rateBytesPerSec)} per connection`);
  if (f.aggregateBytesPerSec) parts.push(`${rate(f.aggregateBytesPerSec)} in total`);
  if (f.latencyMs) parts.push(`${f.latencyMs} ms RTT`);
  if (f.resetMeanBytes) parts.push(`a reset every ~${size(f.resetMeanBytes)}`);
  if (f.stallMeanBytes) parts.push(`a ${f.stallMs === undefined || !Number.isFinite(f.stallMs) ? 'never-ending' : `${f.stallMs / 1000} s`} stall every ~${size(f.stallMeanBytes)}`);
  if (f.corruptPerMiB) parts.push(`${f.corruptPerMiB} flipped bytes per MiB`);
  return parts.join(', ');
}
