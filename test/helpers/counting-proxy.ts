/**
 * A streaming HTTP reverse proxy that counts requests by method and path, so a test can assert
 * "exactly one upstream GET per blob". The Host header is passed through unchanged, so a registry
 * behind it builds Location URLs that point back at the proxy.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: string;
  /** Status sent (0 until headers are sent); 502 if the upstream could not be reached. */
  status: number;
  /** Response body bytes sent to the client. */
  bytes: number;
  /** Date.now() when the request arrived. */
  at: number;
  /** Date.now() when the answer ended, whole or cut (0 while it goes on). */
  doneAt: number;
}

export interface CountingProxyOptions {
  /**
   * Called before forwarding; return true when it has answered the request itself (to inject
   * failures). Intercepted requests are still recorded, with the status the hook wrote.
   */
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
}

export interface CountingProxy {
  url: string;
  host: string;
  port: number;
  /** Requests in arrival order; status and bytes fill in as the answer goes out. */
  requests: ProxiedRequest[];
  /** Requests whose method matches and whose path equals (string) or matches (RegExp) `path`. */
  count(method: string, path: string | RegExp): number;
  /** Counts of blob GETs by digest (paths ending in /blobs/<digest>). */
  blobGets(): Map<string, number>;
  reset(): void;
  close(): Promise<void>;
}

const BLOB_PATH = /\/blobs\/([a-z0-9]+:[a-f0-9]+)$/;

export async function startCountingProxy(target: string, opts: CountingProxyOptions = {}): Promise<CountingProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];

  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://proxy');
    const rec: ProxiedRequest = { method: req.method ?? 'GET', path: u.pathname, query: u.search, status: 0, bytes: 0, at: Date.now(), doneAt: 0 };
    res.once('close', () => { rec.doneAt = Date.now(); });
    // Recorded on arrival, so counts are complete as soon as the client has its answers.
    requests.push(rec);
    // Count body bytes as they go out, whoever writes them (the forwarder or an intercept hook).
    const count = (chunk: unknown): void => {
      if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) rec.bytes += Buffer.byteLength(chunk);
    };
    const origWrite = res.write.bind(res) as (...a: unknown[]) => boolean;
    const origEnd = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
    res.write = ((chunk: unknown, ...rest: unknown[]) => { count(chunk); return origWrite(chunk, ...rest); }) as typeof res.write;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== 'function') count(chunk);
      return origEnd(chunk, ...rest);
    }) as typeof res.end;
    const origWriteHead = res.writeHead.bind(res) as (...a: unknown[]) => ServerResponse;
    res.writeHead = ((status: number, ...rest: unknown[]) => { rec.status = status; return origWriteHead(status, ...rest); }) as typeof res.writeHead;
    void (async () => {
      if (opts.intercept && (await opts.intercept(req, res))) return;
      const up = httpRequest({
        host: upstream.hostname,
        port: upstream.port || 80,
        method: req.method,
        path: req.url,
        headers: req.headers,
      });
      up.once('response', (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, ur.rawHeaders);
        ur.pipe(res);
        ur.once('error', () => res.destroy());
      });
      up.once('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      req.pipe(up);
      res.once('close', () => { if (!up.destroyed && !res.writableFinished) up.destroy(); });
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const host = `127.0.0.1:${port}`;
  return {
    url: `http://${host}`,
    host,
    port,
    requests,
    count(method, path) {
      return requests.filter((r) => r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path))).length;
    },
    blobGets() {
      const m = new Map<string, number>();
      for (const r of requests) {
        const d = r.method === 'GET' ? BLOB_PATH.exec(r.path)?.[1] : undefined;
        if (d) m.set(d, (m.get(d) ?? 0) + 1);
      }
      return m;
    },
    reset() {
      requests.length = 0;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
