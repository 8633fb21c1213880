/**
 * Prefetch: when the mirror serves an image manifest from an upstream, the image's blobs that are
 * not held start to transfer at once, so a client that pulls one layer at a time (skopeo, containerd
 * with one transfer at a time) finds each next layer under way instead of paying the link's ramp
 * per layer. Prefetch transfers are ordinary transfers (transfers.ts: one transfer per digest, which a
 * client's request joins); a blob held or already being transferred is left alone. Bounded: at most
 * `concurrency` blobs of one image at a time, `maxTransfers` over all images, `maxBytes` per image. An image no client asked a
 * blob of for `unclaimedSeconds` (and none is still receiving one, nor got one within that time)
 * has its unclaimed prefetches stopped (their parts stay, so a later request resumes them).
 */
import type { Logger } from '../log/logger.ts';
import { parseManifest, type Descriptor } from '../oci/manifest.ts';
import type { Storage } from '../storage/storage.ts';
import type { Transfers, TransferHandle } from './transfers.ts';
import type { UpstreamPort } from './upstream-port.ts';

export interface PrefetchOptions {
  concurrency: number;
  /** Prefetch transfers at once over every image (each holds a partial blob open): a prewarm of many images waits its turn. */
  maxTransfers: number;
  maxBytes: number;
  unclaimedSeconds: number;
}

export interface ServedManifest {
  upstreamKey: string;
  upstream: UpstreamPort;
  /** Repository on the upstream. */
  repository: string;
  /** Cache repository that holds its blobs. */
  cache: string;
  bytes: Buffer;
  mediaType: string;
}

/** Prefetched blobs remembered until a client asks for them (to count its request as a miss). */
const MAX_FETCHED_AHEAD = 10_000;

/** The prefetch of one image's blobs. */
class ImagePrefetch {
  readonly queue: Descriptor[] = [];
  /** Transfers this prefetch started that no client has asked for yet. */
  readonly unclaimed = new Map<string, TransferHandle>();
  readonly digests = new Set<string>();
  /** Blobs of the image clients asked for: while one still transfers, the image is in use. */
  readonly asked = new Set<string>();
  running = 0;
  lastAskedAt = Date.now();
  stopped = false;

  constructor(readonly image: ServedManifest, readonly key: string) {}
}

export class Prefetcher {
  private readonly images = new Map<string, ImagePrefetch>();
  /** Digest -> the image prefetch that covers it. */
  private readonly byDigest = new Map<string, ImagePrefetch>();
  /** Blobs prefetched whole before any client asked (oldest first, bounded). */
  private readonly fetchedAhead = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  /** Closed: no image starts to prefetch (a manifest served while the service stops). */
  private closed = false;
  /** Prefetch transfers running over every image (at most maxTransfers). */
  private running = 0;

  constructor(
    private readonly transfers: Transfers,
    private readonly store: Storage,
    private readonly opts: PrefetchOptions,
    private readonly logger: Logger,
  ) {
    this.timer = setInterval(() => this.stopIdle(), Math.min(1000, opts.unclaimedSeconds * 250));
    this.timer.unref();
  }

  /** An image manifest was served from an upstream route: fetch its blobs ahead. */
  manifestServed(m: ServedManifest): void {
    if (this.closed) return;
    let blobs: Descriptor[];
    try {
      blobs = parseManifest(m.bytes, m.mediaType).blobs;
    } catch {
      return;
    }
    if (blobs.length === 0) return;
    const key = `${m.cache}@${blobs.map((b) => b.digest).join(',')}`;
    const known = this.images.get(key);
    if (known && !known.stopped) {
      known.lastAskedAt = Date.now();
      return;
    }
    const image = new ImagePrefetch(m, key);
    let bytes = 0;
    for (const b of blobs) {
      if (image.digests.has(b.digest) || this.byDigest.has(b.digest)) continue;
      if (bytes + b.size > this.opts.maxBytes) break;
      bytes += b.size;
      image.queue.push(b);
      image.digests.add(b.digest);
      this.byDigest.set(b.digest, image);
    }
    if (image.queue.length === 0) return;
    this.images.set(key, image);
    this.pump(image);
  }

  /**
   * A client asked for this blob: a prefetch of it is the client's now, and its image is in use.
   * True when a prefetch fetched it (or is fetching it) for this client: the upstream was asked
   * on the client's behalf, a cache miss.
   */
  asked(digest: string): boolean {
    const fetchedAhead = this.fetchedAhead.delete(digest);
    const image = this.byDigest.get(digest);
    if (!image) return fetchedAhead;
    image.lastAskedAt = Date.now();
    image.asked.add(digest);
    // The client gets that blob once it is in (a body is held until verified), and only then asks
    // for the next one: the image is in use until then, and for unclaimedSeconds after.
    this.transfers.get(digest)?.committed.then(() => { image.lastAskedAt = Date.now(); }, () => {});
    return image.unclaimed.delete(digest) || fetchedAhead;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const image of this.images.values()) this.stop(image, 'mirror closing');
  }

  private pump(image: ImagePrefetch): void {
    while (!image.stopped && image.running < this.opts.concurrency && this.running < this.opts.maxTransfers && image.queue.length > 0) {
      const blob = image.queue.shift() as Descriptor;
      image.running++;
      this.running++;
      this.start(image, blob).catch((err: unknown) => {
        this.logger.debug({ err, digest: blob.digest }, 'prefetch not started');
      }).finally(() => {
        image.running--;
        this.running--;
        this.forgetIfDone(image);
        // The slot goes to the oldest image still waiting (the map keeps the order images came in).
        for (const waiting of [...this.images.values()]) this.pump(waiting);
      });
    }
    this.forgetIfDone(image);
  }

  /** Starts the transfer of one blob unless it is held or being transferred; resolves when the transfer ends. */
  private async start(image: ImagePrefetch, blob: Descriptor): Promise<void> {
    const { digest, size } = blob;
    if (this.transfers.get(digest)) return;
    // Held already (for any repository): never across the link again.
    if (await this.store.blobs.has(digest)) return;
    if (image.stopped || this.transfers.get(digest)) return;
    const { upstreamKey, upstream, repository, cache } = image.image;
    const transfer = this.transfers.ensure({
      digest, size, source: upstream.rangeSource(repository, digest), repository: cache, upstream: upstreamKey, group: image.key,
      label: `prefetch ${upstreamKey}/${repository}@${digest.slice(0, 19)}`,
    });
    image.unclaimed.set(digest, transfer);
    const ok = await transfer.committed.then(() => true, () => false);
    if (image.unclaimed.delete(digest) && ok) this.rememberFetchedAhead(digest);
  }

  private rememberFetchedAhead(digest: string): void {
    this.fetchedAhead.add(digest);
    if (this.fetchedAhead.size > MAX_FETCHED_AHEAD) this.fetchedAhead.delete(this.fetchedAhead.values().next().value as string);
  }

  /** Images nobody pulled from for unclaimedSeconds: their unclaimed transfers stop. */
  private stopIdle(): void {
    const now = Date.now();
    for (const image of this.images.values()) {
      if (image.stopped || now - image.lastAskedAt < this.opts.unclaimedSeconds * 1000) continue;
      // A client still receiving a blob of the image (a long layer) keeps its prefetches alive.
      if ([...image.asked].some((d) => this.transfers.get(d))) continue;
      this.stop(image, `no client asked within ${this.opts.unclaimedSeconds} s`);
    }
  }

  private stop(image: ImagePrefetch, reason: string): void {
    image.stopped = true;
    image.queue.length = 0;
    for (const [digest, transfer] of image.unclaimed) {
      this.logger.info({ digest, repository: image.image.cache, reason }, 'prefetch cancelled');
      transfer.transfer.abort(`prefetch cancelled: ${reason}`);
    }
    image.unclaimed.clear();
    this.forgetIfDone(image);
  }

  private forgetIfDone(image: ImagePrefetch): void {
    if (image.running > 0 || (image.queue.length > 0 && !image.stopped)) return;
    for (const [key, value] of this.images) if (value === image) this.images.delete(key);
    for (const d of image.digests) if (this.byDigest.get(d) === image) this.byDigest.delete(d);
  }
}
