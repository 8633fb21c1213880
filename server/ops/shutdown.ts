/**
 * Graceful stop (SIGTERM, SIGINT): stop accepting connections, let requests in progress finish
 * for a bounded time, then park pull-through transfers (abort them; the transfer engine keeps
 * their .part and .journal, so the next start resumes them from where they were), then close
 * what is left. A second signal exits at once.
 */
import type { Server } from 'node:http';
import type { Logger } from '../../lib/log/logger.ts';
import { closeQuietConnections } from '../connections.ts';

export interface ParkableFills {
  readonly active: ReadonlyArray<{ digest: string; committed: Promise<void> }>;
  abortAll(reason: string): void;
}

export interface ShutdownOptions {
  server: Server;
  logger: Logger;
  fills?: ParkableFills;
  /** How long requests in progress may run on (default 10 s). */
  graceMs?: number;
  /** How long parked transfers may take to flush their journals (default 5 s). */
  parkTimeoutMs?: number;
  /** Called first (readiness goes false). */
  onStopAccepting?: () => void;
  /** Called last (timers, stores). */
  onClosed?: () => Promise<void> | void;
}

export interface ShutdownResult {
  /** Requests still running at the end of the grace period (their connections were cut). */
  cut: boolean;
  parked: string[];
  durationMs: number;
}


export async function gracefulShutdown(opts: ShutdownOptions): Promise<ShutdownResult> {
  const started = Date.now();
  const { server, logger } = opts;
  opts.onStopAccepting?.();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // Keep-alive connections go idle between requests: close each as soon as it does, and at once
  // those that never sent one (a client's spare connection would hold the stop for graceMs).
  closeQuietConnections(server);
  const sweep = setInterval(() => closeQuietConnections(server), 100);
  const graceMs = opts.graceMs ?? 10_000;
  const drained = await Promise.race([closed.then(() => true), delay(graceMs).then(() => false)]);
  clearInterval(sweep);

  const fills = opts.fills?.active ?? [];
  const parked = fills.map((f) => f.digest);
  if (fills.length > 0) {
    logger.info({ transfers: parked.length }, 'parking transfers');
    opts.fills?.abortAll('mirror shutting down: transfer parked, it resumes on the next request');
    const settled = Promise.allSettled(fills.map((f) => f.committed));
    await Promise.race([settled, delay(opts.parkTimeoutMs ?? 5000)]);
  }
  if (!drained) server.closeAllConnections();
  await Promise.race([closed, delay(1000)]);
  await opts.onClosed?.();
  const result = { cut: !drained, parked, durationMs: Date.now() - started };
  logger.info(result, 'shutdown complete');
  return result;
}

export interface ServiceParts {
  server: Server;
  fills: ParkableFills;
  /** Upstream clients: closed once no fill can use them. */
  clients: Iterable<{ close(): Promise<void> }>;
  /** The data dir lock: released last, once nothing writes to the store. */
  lock: { release(): Promise<void> };
  /** Timers, pingers, readiness. */
  onStopAccepting?: () => void;
}

/**
 * The one order in which a mirror or a relay stops at once (close()): stop accepting, abort the
 * fills, await their commits (a fill past verification still commits: nothing may write to the
 * store once the lock is released), cut what is left, close the upstream clients, release the lock.
 */
export async function closeInOrder(p: ServiceParts): Promise<void> {
  p.onStopAccepting?.();
  const closed = new Promise<void>((resolve) => p.server.close(() => resolve()));
  p.server.closeIdleConnections();
  const settled = Promise.allSettled(p.fills.active.map((f) => f.committed));
  p.fills.abortAll('shutting down');
  await settled;
  p.server.closeAllConnections();
  await closed;
  await Promise.all([...p.clients].map((c) => c.close()));
  await p.lock.release();
}

/**
 * SIGTERM and SIGINT run `shutdown` once and exit 0; a second signal exits 1 at once.
 * Returns a function that removes the handlers.
 */
export function installSignalHandlers(shutdown: () => Promise<unknown>, logger: Logger, exit: (code: number) => void = process.exit): () => void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    shutdown().then(() => exit(0), (e: unknown) => {
      logger.error({ err: e }, 'shutdown failed');
      exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
