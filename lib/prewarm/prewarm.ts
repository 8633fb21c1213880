/**
 * Pre-warm: pulls images through a running mirror so its transfers are shared with live pulls,
 * discarding the bytes. A blob already held is served at LAN speed; a re-run resumes because
 * the mirror's transfers resume. Several images at once; each blob fetched once per run.
 */
import { EventEmitter } from 'node:events';
import pLimit from 'p-limit';
import { Agent, request, type Dispatcher } from 'undici';
import { MANIFEST_ACCEPT, isIndexMediaType } from '../oci/media-types.ts';
import { parseImageRef, withDefaultTag, mirrorRepository, type ImageRef } from '../rewrite/image-ref.ts';
import { platformMatches, type Platform } from './platforms.ts';
import { RETRY_POLICIES, isRetryableError, isRetryableStatus, parseRetryAfter, withRetries } from '../retry/policy.ts';

export interface PrewarmOptions {
  /** Base URL of the mirror, e.g. http://127.0.0.1:4000. */
  mirror: string;
  refs: string[];
  platforms: Platform[];
  /** Images at once. */
  concurrency?: number;
  /** Attempts per blob (the mirror resumes a failed transfer where it stopped). */
  attempts?: number;
  signal?: AbortSignal;
}

export interface ImageReport {
  ref: string;
  ok: boolean;
  error?: string;
  blobs: number;
  bytes: number;
  durationMs: number;
}

export interface PrewarmReport {
  images: ImageReport[];
  bytes: number;
  durationMs: number;
  /** Bytes per second over the run. */
  goodput: number;
}

export interface PrewarmEvents {
  'image-start': [{ ref: string }];
  /** The image's manifests are read: its blobs (config and layers of the wanted platforms). */
  'image-planned': [{ ref: string; blobs: Array<{ digest: string; size: number }> }];
  'image-done': [ImageReport];
  'blob-start': [{ ref: string; digest: string; size: number }];
  'blob-progress': [{ digest: string; bytes: number; size: number }];
  'blob-done': [{ digest: string; size: number }];
}

interface ImagePlan {
  name: string;
  descriptors: Descriptor[];
}

/** The mirror did not answer at all: every image would fail the same way. */
export class MirrorUnreachableError extends Error {}

/** A connection refused (or a name not resolving) means no mirror at that URL: say what to do. */
function unreachable(base: string, e: unknown): MirrorUnreachableError | undefined {
  const code = (e as { code?: string; cause?: { code?: string } }).code ?? (e as { cause?: { code?: string } }).cause?.code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH') {
    return new MirrorUnreachableError(`no mirror at ${base} (${code}); start it or pass -m URL`);
  }
  return undefined;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: Partial<Platform>;
}

export class Prewarm extends EventEmitter<PrewarmEvents> {
  private readonly base: string;
  private readonly mirrorHost: string;
  private readonly agent: Dispatcher;
  /** One fetch per blob per run, shared by images that have it. */
  private readonly blobs = new Map<string, Promise<number>>();
  /** Bytes of the distinct blobs fetched so far. */
  private bytesDone = 0;
  /** Each image's manifests, read ahead of its turn so progress knows the bytes still to come. */
  private readonly plans = new Map<string, Promise<ImagePlan>>();

  constructor(private readonly opts: PrewarmOptions) {
    super();
    const url = new URL(opts.mirror);
    this.base = url.origin;
    this.mirrorHost = url.host;
    this.agent = new Agent({ connections: 64, pipelining: 1, headersTimeout: 0, bodyTimeout: 600_000 });
  }

  async run(): Promise<PrewarmReport> {
    const started = Date.now();
    await this.checkMirror();
    // Manifests are small: read them ahead (a few at a time) so the total to fetch is known early.
    const planning = pLimit(4);
    for (const ref of this.opts.refs) void planning(() => this.plan(ref).catch(() => undefined));
    const limit = pLimit(Math.max(1, this.opts.concurrency ?? 3));
    const reports: Array<Promise<ImageReport>> = [];
    // An image holds its slot only while the blobs it started itself are in flight, not while it
    // waits on parents' layers another image is fetching: else, as a big shared base layer ends,
    // every slot waits on it and the link drains before the next images ask for anything.
    await Promise.all(this.opts.refs.map((ref) => limit(() => {
      const { own, report } = this.image(ref);
      reports.push(report);
      return own;
    })));
    const images = await Promise.all(reports);
    await this.agent.close();
    const durationMs = Date.now() - started;
    const order = new Map(this.opts.refs.map((r, i) => [r, i]));
    images.sort((a, b) => (order.get(a.ref) ?? 0) - (order.get(b.ref) ?? 0));
    // Each blob once: images sharing a layer would count it once per image.
    const bytes = this.bytesDone;
    return { images, bytes, durationMs, goodput: bytes / Math.max(durationMs / 1000, 0.001) };
  }

  /** The repository path to ask the mirror for: its own host stripped, others host-prefixed. */
  repositoryOf(ref: ImageRef): string {
    return ref.host === this.mirrorHost ? ref.repository : mirrorRepository(ref);
  }

  /** `own` settles once the blobs this image started have; `report` once all of its blobs are in. */
  private image(refText: string): { own: Promise<unknown>; report: Promise<ImageReport> } {
    let releaseWorker: () => void = () => {};
    const own = new Promise<void>((resolve) => { releaseWorker = resolve; });
    const report = (async (): Promise<ImageReport> => {
      const started = Date.now();
      this.emit('image-start', { ref: refText });
      const report: ImageReport = { ref: refText, ok: false, blobs: 0, bytes: 0, durationMs: 0 };
      let blobsAsked = false;
      try {
        const { name, descriptors } = await this.plan(refText);
        const owned: Array<Promise<number>> = [];
        const all = descriptors.map((d) => {
          const { size, started: mine } = this.blob(refText, name, d);
          if (mine) owned.push(size);
          return size;
        });
        blobsAsked = true;
        void Promise.allSettled(owned).then(releaseWorker);
        const sizes = await Promise.all(all);
        report.blobs = sizes.length;
        report.bytes = sizes.reduce((a, b) => a + b, 0);
        report.ok = true;
      } catch (e) {
        report.error = (unreachable(this.base, e) ?? (e as Error)).message;
        // A failed manifest started nothing; after a blob failed, `own` still waits for the rest.
        if (!blobsAsked) releaseWorker();
      }
      report.durationMs = Date.now() - started;
      this.emit('image-done', report);
      return report;
    })();
    return { own, report };
  }

  /** Fails at once, with what to do, when nothing answers at the mirror's URL. */
  private async checkMirror(): Promise<void> {
    try {
      const res = await request(`${this.base}/v2/`, { dispatcher: this.agent, signal: this.opts.signal });
      await res.body.dump();
    } catch (e) {
      throw unreachable(this.base, e) ?? e;
    }
  }

  /** The image's manifests read once: its repository on the mirror and its distinct blobs. */
  private plan(refText: string): Promise<ImagePlan> {
    let p = this.plans.get(refText);
    if (!p) {
      p = (async () => {
        const ref = withDefaultTag(parseImageRef(refText));
        const name = this.repositoryOf(ref);
        const top = await this.manifest(name, ref.digest ?? ref.tag ?? 'latest');
        const manifests = isIndexMediaType(top.mediaType) ? await this.children(name, top.json) : [top.json];
        if (manifests.length === 0) throw new Error(`no manifest for ${this.opts.platforms.map(fmt).join(', ')} in the index`);
        const descriptors = new Map<string, Descriptor>();
        for (const m of manifests) {
          for (const d of [m.config as Descriptor | undefined, ...((m.layers as Descriptor[] | undefined) ?? [])]) {
            if (d && !descriptors.has(d.digest)) descriptors.set(d.digest, d);
          }
        }
        const list = [...descriptors.values()];
        this.emit('image-planned', { ref: refText, blobs: list.map((d) => ({ digest: d.digest, size: d.size })) });
        return { name, descriptors: list };
      })();
      this.plans.set(refText, p);
    }
    return p;
  }

  private async children(name: string, index: Record<string, unknown>): Promise<Array<Record<string, unknown>>> {
    const wanted = ((index.manifests as Descriptor[] | undefined) ?? []).filter((d) => this.opts.platforms.some((p) => platformMatches(p, d.platform)));
    const out: Array<Record<string, unknown>> = [];
    for (const d of wanted) out.push((await this.manifest(name, d.digest)).json);
    return out;
  }

  private async manifest(name: string, reference: string): Promise<{ mediaType: string; json: Record<string, unknown> }> {
    const res = await request(`${this.base}/v2/${name}/manifests/${reference}`, {
      dispatcher: this.agent,
      headers: { accept: MANIFEST_ACCEPT },
      signal: this.opts.signal,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`manifest ${name}:${reference}: HTTP ${res.statusCode} ${registryMessage(text)}`);
    const mediaType = String(res.headers['content-type'] ?? '').split(';')[0] ?? '';
    return { mediaType, json: JSON.parse(text) as Record<string, unknown> };
  }

  /** The blob's one fetch of this run; `started` when this call began it. */
  private blob(ref: string, name: string, d: Descriptor): { size: Promise<number>; started: boolean } {
    const p = this.blobs.get(d.digest);
    if (p) return { size: p, started: false };
    const fetched = this.fetchBlob(ref, name, d).then((n) => {
      this.bytesDone += n;
      return n;
    });
    this.blobs.set(d.digest, fetched);
    return { size: fetched, started: true };
  }

  private async fetchBlob(ref: string, name: string, d: Descriptor): Promise<number> {
    const policy = { ...RETRY_POLICIES.prewarm, ...(this.opts.attempts !== undefined ? { attempts: this.opts.attempts - 1 } : {}) };
    this.emit('blob-start', { ref, digest: d.digest, size: d.size });
    return withRetries(policy, async () => {
      let bytes = 0;
      const res = await request(`${this.base}/v2/${name}/blobs/${d.digest}`, { dispatcher: this.agent, signal: this.opts.signal });
      if (res.statusCode !== 200) {
        const text = await res.body.text();
        throw new MirrorAnswerError(res.statusCode, `blob ${d.digest}: HTTP ${res.statusCode} ${registryMessage(text)}`, parseRetryAfter(res.headers['retry-after']));
      }
      let last = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes - last >= 256 * 1024 || bytes === d.size) {
          last = bytes;
          this.emit('blob-progress', { digest: d.digest, bytes, size: d.size });
        }
      }
      // The mirror cuts a blob whose fill failed: a short body is worth another attempt (it resumes).
      if (bytes !== d.size) throw new MirrorAnswerError(undefined, `blob ${d.digest}: got ${bytes} of ${d.size} bytes`);
      this.emit('blob-done', { digest: d.digest, size: d.size });
      return d.size;
    }, { signal: this.opts.signal, classify: classifyFailure });
  }
}

/** The mirror answered a blob GET with an error status (or cut the body: no status). */
class MirrorAnswerError extends Error {
  constructor(readonly status: number | undefined, message: string, readonly retryAfterMs?: number) {
    super(message);
    this.name = 'MirrorAnswerError';
  }
}

/** The one retry list: retryable statuses, a cut body, and network failures; nothing else. */
function classifyFailure(err: unknown): { retryable: boolean; retryAfterMs?: number | undefined } {
  if (err instanceof MirrorAnswerError) return { retryable: err.status === undefined || isRetryableStatus(err.status), retryAfterMs: err.retryAfterMs };
  return { retryable: isRetryableError(err) };
}

function registryMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { errors?: Array<{ code: string; message: string }> };
    const e = body.errors?.[0];
    if (e) return `${e.code}: ${e.message}`;
  } catch {
    // not JSON: fall through
  }
  return text.slice(0, 200);
}

function fmt(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}
