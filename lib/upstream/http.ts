/**
 * The wire: one undici Agent per upstream and a request that follows redirects by hand. By hand,
 * because a registry sends blobs to its storage or a CDN on another origin: the Range header must
 * survive the hop and the registry's Authorization must not (it would leak a token or a password).
 */
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import type { UpstreamConfig } from '../config/schema.ts';
import { UpstreamProtocolError } from './errors.ts';

export type ResponseBody = Dispatcher.ResponseData['body'];

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
  /** Where the answer came from, after redirects. */
  url: URL;
}

export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
export const MAX_REDIRECTS = 5;
export const USER_AGENT = 'ferry/0.1 (+upstream client)';

/**
 * The link throttles each TCP connection, so blob data must never share one: HTTP/1.1 only, one
 * request per connection at a time, and a pool as large as the config allows. A caFile is added
 * to the public roots (not instead of them) so a relay's CA does not break a redirect to a CDN.
 */
export function createUpstreamAgent(cfg: Pick<UpstreamConfig, 'connections' | 'caFile' | 'headersTimeoutMs' | 'bodyTimeoutMs'>): Agent {
  return new Agent({
    connections: cfg.connections,
    pipelining: 1,
    allowH2: false,
    headersTimeout: cfg.headersTimeoutMs,
    bodyTimeout: cfg.bodyTimeoutMs,
    keepAliveTimeout: 30_000,
    ...(cfg.caFile ? { connect: { ca: [...rootCertificates, readFileSync(cfg.caFile, 'utf8')] } } : {}),
  });
}

export interface SendOptions {
  upstream: string;
  dispatcher: Dispatcher;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  /** Sent only to `authOrigin`, never across a redirect to another origin. */
  authorization?: string | undefined;
  authOrigin: string;
  signal?: AbortSignal | undefined;
}

/** Reads and drops a body we will not use, so its connection goes back to the pool. */
export async function discard(body: ResponseBody): Promise<void> {
  await body.dump().catch(() => undefined);
}

export async function send(url: URL, opts: SendOptions): Promise<Answer> {
  let method = opts.method;
  let current = url;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...opts.headers };
    if (opts.authorization && current.origin === opts.authOrigin) headers.authorization = opts.authorization;
    const res = await request(current, { method, headers, dispatcher: opts.dispatcher, ...(opts.signal ? { signal: opts.signal } : {}) });
    const location = res.headers.location;
    if (!REDIRECT_STATUSES.has(res.statusCode) || typeof location !== 'string') {
      return { status: res.statusCode, headers: res.headers, body: res.body, url: current };
    }
    await discard(res.body);
    if (hop >= MAX_REDIRECTS) {
      throw new UpstreamProtocolError(opts.upstream, `more than ${MAX_REDIRECTS} redirects from ${url.pathname}`, res.statusCode);
    }
    current = new URL(location, current);
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      throw new UpstreamProtocolError(opts.upstream, `redirect to unsupported URL scheme ${current.protocol}`, res.statusCode);
    }
    if (res.statusCode === 303 && method !== 'HEAD') method = 'GET';
  }
}

/** The body, up to `limit` bytes; past it the connection is dropped and `onOversize` thrown. */
export async function readLimited(answer: Answer, limit: number, onOversize: () => Error): Promise<Buffer> {
  const declared = Number(answer.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    answer.body.destroy();
    throw onOversize();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of answer.body) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      answer.body.destroy();
      throw onOversize();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function firstHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
