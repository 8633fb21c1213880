/**
 * A plain node:http server on 127.0.0.1:0 serving one buffer with Range support, plus the
 * misbehaviours of real upstreams, switchable at runtime: ignoring Range (200 with everything),
 * answering wrong Content-Range headers, and 503s.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChunkDigests } from '../../lib/transfer/range-source.ts';

export interface ServerBehaviour {
  /** Answer every Range request with 200 and the whole body. */
  ignoreRange?: boolean;
  /** Answer this many of the next Range requests with a shifted Content-Range. */
  wrongContentRange?: number;
  /** Answer this many of the next requests with 503. */
  unavailable?: number;
}

export interface RangeServer {
  url: string;
  behaviour: ServerBehaviour;
  stats: { requests: number; rangeRequests: number; bodyBytes: number; statuses: number[] };
  close(): Promise<void>;
}

export async function startRangeServer(data: Buffer, behaviour: ServerBehaviour = {}): Promise<RangeServer> {
  const stats: RangeServer['stats'] = { requests: 0, rangeRequests: 0, bodyBytes: 0, statuses: [] };
  const state: RangeServer = { url: '', behaviour, stats, close: async () => {} };
  const server = http.createServer((req, res) => {
    stats.requests++;
    const b = state.behaviour;
    const send = (status: number, headers: Record<string, string | number>, body: Buffer): void => {
      stats.statuses.push(status);
      stats.bodyBytes += body.length;
      res.writeHead(status, { 'content-length': body.length, 'accept-ranges': 'bytes', ...headers });
      res.end(body);
    };
    if (b.unavailable && b.unavailable > 0) {
      b.unavailable--;
      return send(503, { 'retry-after': '0' }, Buffer.from('busy'));
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!m || b.ignoreRange) return send(200, {}, data);
    stats.rangeRequests++;
    const start = Number(m[1]);
    const end = m[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
    if (start >= data.length || end < start) return send(416, { 'content-range': `bytes */${data.length}` }, Buffer.alloc(0));
    let shown = `bytes ${start}-${end}/${data.length}`;
    if (b.wrongContentRange && b.wrongContentRange > 0) {
      b.wrongContentRange--;
      shown = `bytes ${start + 1}-${end + 1}/${data.length}`;
    }
    send(206, { 'content-range': shown }, data.subarray(start, end + 1));
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`;
  state.close = () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return state;
}

/** Deterministic pseudo-random bytes, quickly (sha256 in counter mode would be slower). */
export function makeBlob(size: number, seed = 7): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  for (let i = size - (size % 4); i < size; i++) buf[i] = i & 0xff;
  return buf;
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function chunkDigestsOf(data: Buffer, chunkSize: number): ChunkDigests {
  const digests: string[] = [];
  for (let s = 0; s < data.length; s += chunkSize) digests.push(sha256(data.subarray(s, s + chunkSize)));
  return { chunkSize, digests };
}
