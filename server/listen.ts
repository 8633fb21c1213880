/** Starts an HTTP or HTTPS server for an app on "host:port" and resolves once it listens. */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { RequestListener } from 'node:http';

export interface ListenOptions {
  listen: string;
  tls?: { cert: string; key: string };
}

export function splitHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

export async function listen(app: RequestListener, opts: ListenOptions): Promise<Server> {
  const server = opts.tls
    ? createHttpsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, app)
    : createHttpServer(app);
  // Docker keeps connections open between layers; long idle keep-alive avoids reconnects.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  server.requestTimeout = 0;
  const { host, port } = splitHostPort(opts.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function boundAddress(server: Server): string {
  const a = server.address();
  if (a === null || typeof a === 'string') return String(a);
  return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}
