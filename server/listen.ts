/** Starts an HTTP or HTTPS server for an app on "host:port" and resolves once it listens. */
import { createServer as createHttpServer, type Server } from 'node:http';
import { Server as HttpsServer, createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import type { Logger } from '../lib/log/logger.ts';
import { OperatorError } from '../lib/operator-error.ts';
import { trackConnections } from './connections.ts';

export interface ListenOptions {
  listen: string;
  tls?: { cert: string; key: string };
  /** A request whose headers take longer is cut (config limits.headersTimeoutSeconds). */
  headersTimeoutMs?: number;
}

const DEFAULT_HEADERS_TIMEOUT_MS = 20_000;

export function splitHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

export async function listen(app: RequestListener, opts: ListenOptions): Promise<Server> {
  const headersTimeout = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  // Node checks header deadlines on this interval (30 s by default, which let slow headers live
  // 30 s past their deadline); a tenth of the deadline keeps the overshoot small.
  const serverOptions = { connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 10))) };
  const server = opts.tls
    ? createHttpsServer({ ...serverOptions, cert: readTlsFile(opts.tls.cert, 'tls.cert'), key: readTlsFile(opts.tls.key, 'tls.key') }, app)
    : createHttpServer(serverOptions, app);
  // Docker keeps connections open between layers; long idle keep-alive avoids reconnects.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = headersTimeout;
  // No bound on a whole request (a layer push over a slow client link may take an hour); a
  // stalled or dribbling body is cut by the body deadline instead (server/body-deadline.ts).
  server.requestTimeout = 0;
  trackConnections(server);
  const { host, port } = splitHostPort(opts.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(listenError(e, opts.listen, port)));
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

/**
 * Reads the certificate and key again into a running HTTPS server (SIGHUP). False for plain HTTP,
 * and when a file is unusable: then the previous certificate stays.
 */
export function reloadTls(server: Server, tls: ListenOptions['tls'], logger: Logger): boolean {
  if (!tls || !(server instanceof HttpsServer)) return false;
  try {
    server.setSecureContext({ cert: readTlsFile(tls.cert, 'tls.cert'), key: readTlsFile(tls.key, 'tls.key') });
    logger.info({ cert: tls.cert }, 'TLS certificate reloaded');
    return true;
  } catch (e) {
    logger.error({ err: e, cert: tls.cert }, 'TLS reload failed; keeping the previous certificate');
    return false;
  }
}

function readTlsFile(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OperatorError(`${key} file ${path} does not exist: create it or fix ${key} in the config`, 'runtime', { cause: e });
    if (code === 'EACCES') throw new OperatorError(`${key} file ${path} is not readable by this user: fix its owner or mode`, 'runtime', { cause: e });
    throw e;
  }
}

/** A listen failure an operator can fix, in one line; anything else as it is. */
function listenError(e: NodeJS.ErrnoException, address: string, port: number): Error {
  if (e.code === 'EADDRINUSE') {
    return new OperatorError(`${address} is already in use by another process: stop it (\`ss -ltnp 'sport = :${port}'\` shows which) or set listen (env FERRY_LISTEN) to a free port`, 'runtime', { cause: e });
  }
  if (e.code === 'EACCES') {
    return new OperatorError(`not allowed to listen on ${address}: ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port above 1024`, 'runtime', { cause: e });
  }
  if (e.code === 'EADDRNOTAVAIL') return new OperatorError(`${address} is not an address of this host: fix listen (env FERRY_LISTEN)`, 'runtime', { cause: e });
  return e;
}
