/**
 * The client of one upstream v2 registry (Docker Hub, quay.io, any registry, or a ferry relay):
 * manifests, blobs, tags. One undici Agent per upstream (HTTP/1.1, one request per connection),
 * auth from auth.ts, retries from retry.ts, every failure a typed error from errors.ts. Requests
 * that return a body to read are retried whole; a streamed blob is retried until its headers
 * arrive, after which the caller (the transfer engine) resumes with a Range.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Agent } from 'undici';
import type { UpstreamConfig } from '../config/schema.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { digestOf, parseDigest, requireDigest } from '../oci/digest.ts';
import { isRegistryError } from '../oci/errors.ts';
import { MAX_MANIFEST_BYTES } from '../oci/manifest.ts';
import { MANIFEST_ACCEPT, MEDIA, isManifestMediaType } from '../oci/media-types.ts';
import { parseReference, requireName } from '../oci/names.ts';
import type { ChunkDigests, RangeSource } from '../transfer/range-source.ts';
import { UpstreamAuth, pullScope, type TokenResponse } from './auth.ts';
import {
  UpstreamAuthError, UpstreamError, UpstreamNotFoundError, UpstreamProtocolError, UpstreamRateLimitedError,
  UpstreamUnavailableError, type UpstreamResource,
} from './errors.ts';
import { createUpstreamAgent, discard, firstHeader, readLimited, send, type Answer } from './http.ts';
import { nextPageUrl } from './link.ts';
import { upstreamRangeSource } from './range-source.ts';
import { upstreamRepository } from './repository.ts';
import {
  RETRY_AFTER_STATUSES, RETRY_POLICIES, errorCode, isRetryableError, isRetryableStatus, parseRetryAfter,
  withRetries, type RetryPolicy,
} from '../retry/policy.ts';

export { upstreamRepository } from './repository.ts';

const MAX_TOKEN_BYTES = 1024 * 1024;
const MAX_TAGS_PAGE_BYTES = 16 * 1024 * 1024;
const MAX_TAG_PAGES = 10_000;
const MAX_CHUNK_LIST_BYTES = 16 * 1024 * 1024;
/** An error body we read for its message; a larger one is dropped unread. */
const MAX_REASON_BYTES = 16 * 1024;

export interface UpstreamClientOptions {
  logger?: Logger;
  /** Overrides of the backoff (retries comes from the config). */
  retry?: Partial<Omit<RetryPolicy, 'attempts'>>;
  /** The clock for token expiry (tests). */
  now?: () => number;
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  /** Computed from the bytes (in the reference's algorithm when it is a digest). */
  digest: string;
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

export interface BlobHead {
  size: number;
  acceptRanges: boolean;
  /** Where the blob was found when the registry redirected (a CDN URL, often signed). */
  url?: string;
}

export interface BlobRequest {
  /** First byte; with no end, up to the last. */
  start?: number;
  /** Last byte, inclusive. */
  end?: number;
  signal?: AbortSignal;
}

export interface BlobResponse {
  status: 200 | 206;
  headers: IncomingHttpHeaders;
  body: Readable;
  /** The whole blob's size when the answer says it (Content-Length of a 200, Content-Range total of a 206). */
  size?: number;
}

interface Call {
  method: 'GET' | 'HEAD';
  url: URL;
  headers?: Record<string, string>;
  scope?: string;
  signal?: AbortSignal | undefined;
}

export class UpstreamClient {
  readonly kind: UpstreamConfig['kind'];
  private readonly base: URL;
  private readonly origin: string;
  private readonly agent: Agent;
  private readonly auth: UpstreamAuth;
  private readonly log: Logger;
  private readonly policy: RetryPolicy;
  private readonly now: () => number;

  /** The configured URL (for the status page). */
  get baseUrl(): string {
    return this.base.href;
  }

  constructor(readonly name: string, cfg: UpstreamConfig, opts: UpstreamClientOptions = {}) {
    this.kind = cfg.kind;
    this.base = new URL(cfg.url);
    this.origin = this.base.origin;
    this.agent = createUpstreamAgent(cfg);
    this.now = opts.now ?? Date.now;
    this.auth = new UpstreamAuth(name, cfg, (url, headers) => this.fetchToken(url, headers), this.now);
    this.log = (opts.logger ?? silentLogger).child({ module: 'upstream', upstream: name });
    this.policy = { ...RETRY_POLICIES.upstream, ...opts.retry, attempts: cfg.retries };
  }

  /** The repository's name on this upstream (library/ added on Docker Hub); throws NAME_INVALID. */
  repository(name: string): string {
    return upstreamRepository(this.kind, requireName(name));
  }

  /** GET /v2/: reachable, a registry, and our credentials (if any) accepted. */
  async ping(signal?: AbortSignal): Promise<void> {
    await this.retrying('ping', signal, async () => {
      const answer = await this.exchange({ method: 'GET', url: this.url('/v2/'), signal });
      if (answer.status === 200) return discard(answer.body);
      if (answer.status === 404) {
        await discard(answer.body);
        throw new UpstreamProtocolError(this.name, 'is not a v2 registry (GET /v2/ answered 404)', 404);
      }
      throw await this.failure(answer, 'repository', '/v2/');
    });
  }

  /** The manifest's bytes as the upstream serves them, digest-checked, at most 4 MiB. */
  async getManifest(repo: string, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const name = this.repository(repo);
    const ref = parseReference(reference);
    const label = ref.kind === 'digest' ? `${name}@${ref.digest}` : `${name}:${ref.tag}`;
    const algorithm = ref.kind === 'digest' ? requireDigest(ref.digest).algorithm : 'sha256';
    return this.retrying('manifest', signal, async () => {
      const answer = await this.exchange(this.manifestCall('GET', name, reference, signal));
      if (answer.status !== 200) throw await this.failure(answer, 'manifest', label);
      const bytes = await readLimited(answer, MAX_MANIFEST_BYTES, () =>
        new UpstreamProtocolError(this.name, `manifest ${label} exceeds ${MAX_MANIFEST_BYTES} bytes`, 200, { limit: MAX_MANIFEST_BYTES }));
      const digest = digestOf(bytes, algorithm);
      if (ref.kind === 'digest' && digest !== ref.digest) {
        throw new UpstreamProtocolError(this.name, `manifest ${label} has digest ${digest}`, 200, { expected: ref.digest, actual: digest });
      }
      const claimed = firstHeader(answer.headers, 'docker-content-digest');
      if (claimed && parseDigest(claimed)?.algorithm === algorithm && claimed !== digest) {
        throw new UpstreamProtocolError(this.name, `manifest ${label} claims digest ${claimed} but its bytes are ${digest}`, 200, { claimed, actual: digest });
      }
      return { bytes, mediaType: manifestMediaType(bytes, firstHeader(answer.headers, 'content-type')), digest };
    });
  }

  /** Digest, type and size of a manifest (to revalidate a cached tag); undefined when it does not exist. */
  async headManifest(repo: string, reference: string, signal?: AbortSignal): Promise<ManifestHead | undefined> {
    const name = this.repository(repo);
    const ref = parseReference(reference);
    const label = ref.kind === 'digest' ? `${name}@${ref.digest}` : `${name}:${ref.tag}`;
    const head = await this.retrying('manifest', signal, async () => {
      const answer = await this.exchange(this.manifestCall('HEAD', name, reference, signal));
      if (answer.status === 404) {
        await discard(answer.body);
        return null;
      }
      if (answer.status !== 200) throw await this.failure(answer, 'manifest', label);
      await discard(answer.body);
      const digest = firstHeader(answer.headers, 'docker-content-digest');
      const mediaType = firstHeader(answer.headers, 'content-type')?.split(';')[0]?.trim();
      const size = Number(firstHeader(answer.headers, 'content-length'));
      if (ref.kind === 'digest' && digest !== undefined && digest !== ref.digest) {
        throw new UpstreamProtocolError(this.name, `manifest ${label} claims digest ${digest}`, 200, { expected: ref.digest, claimed: digest });
      }
      if (!digest || !parseDigest(digest) || !mediaType || !isManifestMediaType(mediaType) || !Number.isSafeInteger(size)) return undefined;
      return { digest, mediaType, size };
    });
    if (head === null) return undefined;
    if (head) return head;
    // Some registries leave the digest (or the type) off a HEAD: the bytes answer it instead.
    const m = await this.getManifest(repo, reference, signal);
    return { digest: m.digest, mediaType: m.mediaType, size: m.bytes.length };
  }

  /** Size and range support of a blob, following redirects; undefined when it does not exist. */
  async headBlob(repo: string, digest: string, signal?: AbortSignal): Promise<BlobHead | undefined> {
    const name = this.repository(repo);
    requireDigest(digest);
    const url = this.blobUrl(name, digest);
    return this.retrying('blob', signal, async () => {
      const answer = await this.exchange({ method: 'HEAD', url, scope: pullScope(name), signal });
      await discard(answer.body);
      if (answer.status === 404) return undefined;
      if (answer.status !== 200) throw await this.failure(answer, 'blob', `${name}@${digest}`);
      const size = Number(firstHeader(answer.headers, 'content-length'));
      if (!Number.isSafeInteger(size) || size < 0) throw new UpstreamProtocolError(this.name, `blob ${name}@${digest} has no Content-Length`, 200);
      const acceptRanges = /\bbytes\b/i.test(firstHeader(answer.headers, 'accept-ranges') ?? '');
      return { size, acceptRanges, ...(answer.url.href !== url.href ? { url: answer.url.href } : {}) };
    });
  }

  /**
   * Streams a blob (or a range of it), following redirects to blob storage; retried until the
   * headers arrive. The body is the caller's: consume it or destroy it.
   */
  async getBlob(repo: string, digest: string, opts: BlobRequest = {}): Promise<BlobResponse> {
    const name = this.repository(repo);
    requireDigest(digest);
    const range = opts.start !== undefined || opts.end !== undefined ? `bytes=${opts.start ?? 0}-${opts.end ?? ''}` : undefined;
    return this.retrying('blob', opts.signal, async () => {
      const answer = await this.fetchBlob(name, digest, { range, signal: opts.signal });
      if (answer.status !== 200 && answer.status !== 206) throw await this.failure(answer, 'blob', `${name}@${digest}`);
      const size = blobSize(answer);
      return { status: answer.status, headers: answer.headers, body: answer.body, ...(size !== undefined ? { size } : {}) };
    });
  }

  /**
   * One GET of a blob with auth and redirects but no retry and no status check: what the transfer
   * engine wants, since it retries, resumes and judges statuses itself.
   */
  async fetchBlob(repo: string, digest: string, opts: { range?: string | undefined; signal?: AbortSignal | undefined } = {}): Promise<Answer> {
    const name = this.repository(repo);
    requireDigest(digest);
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (opts.range) headers.range = opts.range;
    return this.exchange({ method: 'GET', url: this.blobUrl(name, digest), headers, scope: pullScope(name), signal: opts.signal });
  }

  /** A RangeSource for the transfer engine over one blob of this upstream. */
  rangeSource(repo: string, digest: string): RangeSource {
    return upstreamRangeSource(this, repo, digest);
  }

  /**
   * A ferry relay's digests of the `chunkSize` pieces of a blob it holds complete (its
   * `/blobs/<digest>/chunks?size=` endpoint); undefined when it has none to offer (404).
   */
  async chunkDigests(repo: string, digest: string, chunkSize: number, signal?: AbortSignal): Promise<ChunkDigests | undefined> {
    const name = this.repository(repo);
    requireDigest(digest);
    const label = `${name}@${digest} chunks`;
    return this.retrying('chunks', signal, async () => {
      const answer = await this.exchange({ method: 'GET', url: this.url(`/v2/${name}/blobs/${digest}/chunks?size=${chunkSize}`), headers: { accept: 'application/json' }, scope: pullScope(name), signal });
      if (answer.status === 404) {
        await discard(answer.body);
        return undefined;
      }
      if (answer.status !== 200) throw await this.failure(answer, 'blob', label);
      const body = await readLimited(answer, MAX_CHUNK_LIST_BYTES, () => new UpstreamProtocolError(this.name, `${label} too large`));
      const list = parseChunkDigests(body);
      if (!list) throw new UpstreamProtocolError(this.name, `${label} is not a chunk list`);
      return list;
    });
  }

  /** Every tag of a repository, following Link pagination. */
  async listTags(repo: string, signal?: AbortSignal): Promise<string[]> {
    const name = this.repository(repo);
    const tags: string[] = [];
    const seen = new Set<string>();
    for (let url: URL | undefined = this.url(`/v2/${name}/tags/list`); url;) {
      if (seen.has(url.href) || seen.size >= MAX_TAG_PAGES) throw new UpstreamProtocolError(this.name, `tag list of ${name} paginates in a loop`);
      seen.add(url.href);
      const pageUrl: URL = url;
      const page = await this.retrying('tags', signal, async () => {
        const answer = await this.exchange({ method: 'GET', url: pageUrl, headers: { accept: 'application/json' }, scope: pullScope(name), signal });
        if (answer.status !== 200) throw await this.failure(answer, 'repository', name);
        const body = await readLimited(answer, MAX_TAGS_PAGE_BYTES, () => new UpstreamProtocolError(this.name, `a tag list page of ${name} is too large`));
        return { body, next: nextPageUrl(answer.headers.link, answer.url) };
      });
      tags.push(...this.parseTags(page.body, name));
      if (page.next && page.next.origin !== this.origin) throw new UpstreamProtocolError(this.name, `tag list of ${name} links to another origin`);
      url = page.next;
    }
    return tags;
  }

  /** Closes this upstream's connections. */
  async close(): Promise<void> {
    await this.agent.close();
  }

  private parseTags(body: Buffer, name: string): string[] {
    let json: { tags?: unknown };
    try {
      json = JSON.parse(body.toString('utf8')) as typeof json;
    } catch {
      throw new UpstreamProtocolError(this.name, `tag list of ${name} is not JSON`);
    }
    // distribution answers `"tags": null` for a repository whose tags were all deleted.
    if (json.tags === null || json.tags === undefined) return [];
    if (!Array.isArray(json.tags)) throw new UpstreamProtocolError(this.name, `tag list of ${name} has no tags array`);
    return json.tags.filter((t): t is string => typeof t === 'string');
  }

  private url(path: string): URL {
    const prefix = this.base.pathname.replace(/\/+$/, '');
    return new URL(`${prefix}${path}`, this.origin);
  }

  private blobUrl(name: string, digest: string): URL {
    return this.url(`/v2/${name}/blobs/${digest}`);
  }

  private manifestCall(method: 'GET' | 'HEAD', name: string, reference: string, signal: AbortSignal | undefined): Call {
    return { method, url: this.url(`/v2/${name}/manifests/${reference}`), headers: { accept: MANIFEST_ACCEPT }, scope: pullScope(name), signal };
  }

  /** One request with what auth needs: credentials up front when known, one more try after a 401. */
  private async exchange(call: Call): Promise<Answer> {
    const sent = await this.auth.authorization(call.scope);
    const first = await this.send(call, sent);
    if (first.status !== 401 || first.url.origin !== this.origin || !this.auth.negotiates) return first;
    const challenge = first.headers['www-authenticate'];
    await discard(first.body);
    const retryWith = await this.auth.answer(challenge, call.scope, sent);
    return this.send(call, retryWith);
  }

  private send(call: Call, authorization: string | undefined): Promise<Answer> {
    return send(call.url, {
      upstream: this.name,
      dispatcher: this.agent,
      method: call.method,
      headers: call.headers ?? {},
      authorization,
      authOrigin: this.origin,
      signal: call.signal,
    });
  }

  /** The token endpoint may be another origin (auth.docker.io): our credentials go there and nowhere else. */
  private fetchToken(url: URL, headers: Record<string, string>): Promise<TokenResponse> {
    const { authorization, ...rest } = headers;
    return this.retrying('token', undefined, async () => {
      const answer = await send(url, { upstream: this.name, dispatcher: this.agent, method: 'GET', headers: rest, authorization, authOrigin: url.origin });
      if (isRetryableStatus(answer.status)) throw await this.failure(answer, 'repository', 'token');
      const body = await readLimited(answer, MAX_TOKEN_BYTES, () => new UpstreamProtocolError(this.name, 'token response too large'));
      return { status: answer.status, body };
    });
  }

  /** The error an unusable answer stands for; its body is released. */
  private async failure(answer: Answer, resource: UpstreamResource, ref: string): Promise<UpstreamError> {
    const reason = await upstreamReason(answer);
    const s = answer.status;
    if (s === 404) return new UpstreamNotFoundError(this.name, resource, ref);
    if (s === 401 || s === 403) {
      const insufficientScope = s === 401 && UpstreamAuth.insufficientScope(answer.headers['www-authenticate']);
      // A 401's own text is only "authentication required": our hint says more. A 403 says why.
      return new UpstreamAuthError(this.name, `refused access to ${ref} (${s})`, s, insufficientScope, s === 403 ? reason : undefined);
    }
    const retryAfterMs = RETRY_AFTER_STATUSES.has(s) ? parseRetryAfter(answer.headers['retry-after'], this.now()) : undefined;
    if (s === 429) return new UpstreamRateLimitedError(this.name, retryAfterMs);
    const why = reason ? `: ${reason}` : '';
    if (s >= 500 || isRetryableStatus(s)) return new UpstreamUnavailableError(this.name, `answered ${s} for ${ref}${why}`, s, { retryAfterMs });
    return new UpstreamProtocolError(this.name, `answered ${s} for ${ref}${why}`, s);
  }

  private async retrying<T>(what: string, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    try {
      return await withRetries(this.policy, attempt, {
        signal,
        classify,
        onRetry: (e) => this.log.warn({ what, attempt: e.attempt + 1, delayMs: e.delayMs, err: describe(e.error) }, 'upstream request failed; retrying'),
      });
    } catch (err) {
      throw this.finalError(err, signal);
    }
  }

  /** Network failures leave as UpstreamUnavailableError; our own errors and an abort as they are. */
  private finalError(err: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted || err instanceof UpstreamError || isRegistryError(err)) return err;
    const code = errorCode(err);
    if (code === undefined) return err;
    return new UpstreamUnavailableError(this.name, `${unreachableHint(this.name, this.origin, code)} (${describe(err)})`, undefined, { cause: err });
  }
}

function classify(err: unknown): { retryable: boolean; retryAfterMs?: number | undefined } {
  if (err instanceof UpstreamRateLimitedError) return { retryable: true, retryAfterMs: err.retryAfterMs };
  if (err instanceof UpstreamUnavailableError) {
    return { retryable: err.status !== undefined && isRetryableStatus(err.status), retryAfterMs: err.retryAfterMs };
  }
  if (err instanceof UpstreamError) return { retryable: false };
  return { retryable: isRetryableError(err) };
}

/** TLS failures that mean "we do not trust this certificate": the fix is a CA file. */
const UNTRUSTED_CERT = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

/** What an operator reads when the upstream cannot be reached: the cause and what to do. */
function unreachableHint(name: string, origin: string, code: string): string {
  if (UNTRUSTED_CERT.has(code)) return `certificate not trusted: set upstreams.${name}.caFile to the CA that signed ${origin}'s certificate`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `certificate of ${origin} does not name that host: fix upstreams.${name}.url or the certificate`;
  if (code === 'CERT_HAS_EXPIRED') return `certificate of ${origin} has expired: renew it`;
  if (code === 'ECONNREFUSED') return `unreachable: nothing listens at ${origin}; is it running? (upstreams.${name}.url)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `unreachable: cannot resolve the host of ${origin} (upstreams.${name}.url)`;
  return `unreachable at ${origin}`;
}

/** The upstream's own words for a failure: the first error of a registry's JSON body, one line. */
async function upstreamReason(answer: Answer): Promise<string | undefined> {
  const type = firstHeader(answer.headers, 'content-type') ?? '';
  if (!type.includes('json')) {
    await discard(answer.body);
    return undefined;
  }
  const body = await readLimited(answer, MAX_REASON_BYTES, () => new Error('oversize')).catch(() => undefined);
  if (!body) return undefined;
  try {
    const e = (JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> }).errors?.[0];
    if (typeof e?.message !== 'string' || e.message.length === 0) return undefined;
    const text = `${typeof e.code === 'string' ? `${e.code}: ` : ''}${e.message}`;
    return text.replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 300);
  } catch {
    return undefined;
  }
}

function describe(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** Content-Type when it names a manifest type, else what the manifest says about itself. */
function manifestMediaType(bytes: Buffer, contentType: string | undefined): string {
  const ct = contentType?.split(';')[0]?.trim();
  if (ct && isManifestMediaType(ct)) return ct;
  try {
    const json = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof json.mediaType === 'string') return json.mediaType;
    if (json && typeof json === 'object') return Array.isArray(json.manifests) ? MEDIA.ociIndex : MEDIA.ociManifest;
  } catch {
    // not JSON: the mirror's manifest parser will refuse it with a proper error
  }
  return ct ?? 'application/octet-stream';
}

function parseChunkDigests(body: Buffer): ChunkDigests | undefined {
  try {
    const json = JSON.parse(body.toString('utf8')) as { chunkSize?: unknown; digests?: unknown };
    const { chunkSize, digests } = json;
    if (typeof chunkSize !== 'number' || !Number.isSafeInteger(chunkSize) || chunkSize <= 0 || !Array.isArray(digests)) return undefined;
    if (!digests.every((d): d is string => typeof d === 'string' && /^([a-z0-9]+:)?[a-f0-9]{32,128}$/.test(d))) return undefined;
    return { chunkSize, digests };
  } catch {
    return undefined;
  }
}

function blobSize(answer: Answer): number | undefined {
  if (answer.status === 206) {
    const m = /\/(\d+)\s*$/.exec(firstHeader(answer.headers, 'content-range') ?? '');
    return m ? Number(m[1]) : undefined;
  }
  const length = Number(firstHeader(answer.headers, 'content-length'));
  return Number.isSafeInteger(length) ? length : undefined;
}
