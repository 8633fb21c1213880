/**
 * What a pre-warm's progress shows, apart from how it is drawn: bytes per image (name:tag), the
 * bytes still to come over all images (read from their manifests, extrapolated for images not
 * read yet), a smoothed goodput and the ETA it gives. Pure: the caller feeds events and ticks.
 *
 * The ETA is the bytes still to come over the goodput, smoothed over ~20 s so it does not jump;
 * and since blobs the mirror already holds arrive at LAN speed, the rate it uses never exceeds the
 * highest goodput the mirror's link has shown (its /status.json): an ETA is never shorter than
 * the link needs to carry what is left.
 */

export const MIB = 1024 * 1024;
/** Time constant of the smoothed rates. */
const SMOOTHING_MS = 20_000;

type ImageState = 'waiting' | 'active' | 'done' | 'failed';

interface ImageEntry {
  label: string;
  state: ImageState;
  /** Its distinct blobs, once its manifests are read. */
  blobs?: string[];
  rate: Smoothed;
}

interface BlobEntry {
  size: number;
  done: number;
}

/** An exponentially smoothed rate of a growing byte count. */
class Smoothed {
  private last: { at: number; bytes: number } | undefined;
  value: number | undefined;

  sample(at: number, bytes: number): void {
    if (this.last && at > this.last.at) {
      const dt = at - this.last.at;
      const instant = ((bytes - this.last.bytes) * 1000) / dt;
      const alpha = 1 - Math.exp(-dt / SMOOTHING_MS);
      this.value = this.value === undefined ? instant : this.value + alpha * (instant - this.value);
    }
    if (!this.last || at > this.last.at) this.last = { at, bytes };
  }
}

export interface ImageView {
  ref: string;
  label: string;
  state: ImageState;
  done: number;
  /** Undefined until its manifests are read. */
  size: number | undefined;
  /** Bytes per second, smoothed; undefined before two samples. */
  rate: number | undefined;
}

export interface OverallView {
  images: number;
  imagesDone: number;
  imagesFailed: number;
  done: number;
  /** Bytes done plus bytes still to come. */
  total: number;
  toCome: number;
  /** True while some images' manifests are not read yet (their size is an estimate). */
  estimated: boolean;
  rate: number | undefined;
  /** Seconds; undefined while no rate is known. */
  eta: number | undefined;
}

/** `nova-api:2025.1-rocky-9` of `quay.io/openstack.kolla/nova-api:2025.1-rocky-9`: what names an image in a bar. */
export function imageLabel(ref: string): string {
  const at = ref.indexOf('@');
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const short = name.slice(name.lastIndexOf('/') + 1);
  return at >= 0 ? `${short}@${ref.slice(at + 1).replace(/^sha256:/, '').slice(0, 12)}` : short;
}

export class PrewarmProgress {
  private readonly images = new Map<string, ImageEntry>();
  private readonly blobs = new Map<string, BlobEntry>();
  private readonly rate = new Smoothed();
  private linkPeak = 0;

  constructor(refs: readonly string[]) {
    for (const ref of refs) this.images.set(ref, { label: imageLabel(ref), state: 'waiting', rate: new Smoothed() });
  }

  /** The image's turn came at `now`: its rate counts from there (a rate shows after the first tick). */
  started(ref: string, now?: number): void {
    const image = this.images.get(ref);
    if (!image || image.state !== 'waiting') return;
    image.state = 'active';
    if (now !== undefined) image.rate.sample(now, this.imageDone(ref));
  }

  planned(ref: string, blobs: ReadonlyArray<{ digest: string; size: number }>): void {
    const image = this.images.get(ref);
    if (!image) return;
    image.blobs = blobs.map((b) => b.digest);
    for (const b of blobs) if (!this.blobs.has(b.digest)) this.blobs.set(b.digest, { size: b.size, done: 0 });
  }

  /** Bytes of the blob's current attempt (a retry starts again from 0: those bytes are to come again). */
  blobProgress(digest: string, bytes: number, size: number): void {
    this.blobs.set(digest, { size, done: Math.min(bytes, size) });
  }

  finished(ref: string, ok: boolean): void {
    const image = this.images.get(ref);
    if (image) image.state = ok ? 'done' : 'failed';
  }

  /** The mirror's link goodput now (bytes/s): its highest value bounds the rate the ETA uses. */
  linkRate(bytesPerSecond: number): void {
    if (Number.isFinite(bytesPerSecond)) this.linkPeak = Math.max(this.linkPeak, bytesPerSecond);
  }

  /** Samples the rates; call about once a second. */
  tick(now: number): void {
    this.rate.sample(now, this.bytesDone());
    for (const [ref, image] of this.images) if (image.state === 'active') image.rate.sample(now, this.imageDone(ref));
  }

  image(ref: string): ImageView {
    const image = this.images.get(ref);
    if (!image) throw new Error(`not an image of this pre-warm: ${ref}`);
    const size = image.blobs?.reduce((sum, d) => sum + (this.blobs.get(d)?.size ?? 0), 0);
    return { ref, label: image.label, state: image.state, done: this.imageDone(ref), size, rate: image.rate.value };
  }

  overall(): OverallView {
    const done = this.bytesDone();
    // Blobs of images still to finish, each once; images not read yet count as the average read one.
    const pending = new Set<string>();
    let unread = 0;
    let readBytes = 0;
    let read = 0;
    let imagesDone = 0;
    let imagesFailed = 0;
    for (const image of this.images.values()) {
      if (image.state === 'done') imagesDone++;
      if (image.state === 'failed') imagesFailed++;
      if (image.blobs) {
        read++;
        readBytes += image.blobs.reduce((sum, d) => sum + (this.blobs.get(d)?.size ?? 0), 0);
      }
      if (image.state === 'done' || image.state === 'failed') continue;
      if (image.blobs) for (const d of image.blobs) pending.add(d);
      else unread++;
    }
    let toCome = 0;
    for (const d of pending) {
      const b = this.blobs.get(d);
      if (b) toCome += b.size - b.done;
    }
    if (unread > 0 && read > 0) toCome += Math.round((readBytes / read) * unread);
    const measured = this.rate.value;
    const rate = measured !== undefined && this.linkPeak > 0 ? Math.min(measured, this.linkPeak) : measured;
    const eta = rate !== undefined && rate > 0 ? toCome / rate : toCome === 0 && rate !== undefined ? 0 : undefined;
    return {
      images: this.images.size,
      imagesDone,
      imagesFailed,
      done,
      total: done + toCome,
      toCome,
      estimated: unread > 0,
      rate: measured,
      eta,
    };
  }

  private bytesDone(): number {
    let sum = 0;
    for (const b of this.blobs.values()) sum += b.done;
    return sum;
  }

  private imageDone(ref: string): number {
    return this.images.get(ref)?.blobs?.reduce((sum, d) => sum + (this.blobs.get(d)?.done ?? 0), 0) ?? 0;
  }
}

/** MiB with one decimal: the one size unit of pre-warm's output. */
export function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

/** `1h02m`, `4m05s`, `12s`; `--` when unknown. */
export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--';
  const s = Math.ceil(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}
