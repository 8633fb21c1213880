/**
 * The one order in which a mirror or a relay stops, on SIGTERM/SIGINT (`shutdown`) and on
 * `close()`: stop accepting (readiness, prefetch, ops timers: no new transfer starts on their own),
 * let requests in progress finish for a bounded time, park the transfers (abort them; the transfer
 * engine keeps their .part and .journal, so the next start resumes them) and await every commit in
 * progress (a transfer past verification still commits: nothing may write to the store once the lock is
 * released), cut what is left, flush link state, close the upstream clients, stop the sweeper
 * (awaiting a pass in progress), release the lock last. A second signal exits at once.
 */
import type { Server } from 'node:http';
import type { Logger } from '../../lib/log/logger.ts';
import { closeQuietConnections } from '../connections.ts';

export interface ParkableTransfers {
  readonly active: ReadonlyArray<{ digest: string; committed: Promise<void> }>;
  abortAll(reason: string): void;
}

export interface ServiceParts {
  server: Server;
  logger: Logger;
  transfers: ParkableTransfers;
  /** Called first: readiness goes false; prefetch and timers stop, so no transfer starts on their own. */
  stopAccepting: () => void;
  /** What the transfers taught (link state): saved once no transfer runs, before the clients close. */
  flush?: () => Promise<void>;
  /** Upstream clients: closed once no transfer can use them. */
  clients: Iterable<{ close(): Promise<void> }>;
  /** Resolves once a sweep in progress has ended. */
  sweeper: { stop(): Promise<void> };
  /** The data dir lock: released last, once nothing writes to the store. */
  lock: { release(): Promise<void> };
}

export interface ShutdownResult {
  /** Requests still running at the end of the grace period (their connections were cut). */
  cut: boolean;
  parked: string[];
  durationMs: number;
}

/** Stops a service in the order above; `graceMs` (default 10 s, 0 for close()) bounds the requests in progress. */
export async function stopInOrder(p: ServiceParts, opts: { graceMs?: number } = {}): Promise<ShutdownResult> {
  const started = Date.now();
  const { server, logger } = p;
  p.stopAccepting();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // Keep-alive connections go idle between requests: close each as soon as it does, and at once
  // those that never sent one (a client's spare connection would hold the stop for graceMs).
  closeQuietConnections(server);
  const sweep = setInterval(() => closeQuietConnections(server), 100);
  const drained = await Promise.race([closed.then(() => true), delay(opts.graceMs ?? 10_000).then(() => false)]);
  clearInterval(sweep);
  if (!drained) server.closeAllConnections();
  const parked = await parkTransfers(p.transfers, logger);
  await Promise.race([closed, delay(1000)]);
  await p.flush?.();
  await Promise.all([...p.clients].map((c) => c.close()));
  await p.sweeper.stop();
  await p.lock.release();
  const result = { cut: !drained, parked, durationMs: Date.now() - started };
  logger.info(result, 'shutdown complete');
  return result;
}

/**
 * Aborts every transfer and awaits each commit, bounded only by the commit itself (local I/O); again
 * while a request that was still running started another.
 */
async function parkTransfers(transfers: ParkableTransfers, logger: Logger): Promise<string[]> {
  const parked: string[] = [];
  for (let active = transfers.active; active.length > 0; active = transfers.active) {
    logger.info({ transfers: active.length }, 'parking transfers');
    parked.push(...active.map((f) => f.digest));
    transfers.abortAll('shutting down: transfer parked, it resumes on the next request');
    await Promise.allSettled(active.map((f) => f.committed));
  }
  return parked;
}

/**
 * SIGTERM and SIGINT run `shutdown` once and exit 0; a second signal exits 1 at once. SIGHUP runs
 * `reload` (a running service's: the TLS certificate, the relay's token file).
 * Returns a function that removes the handlers.
 */
export function installSignalHandlers(service: { shutdown(): Promise<unknown>; reload(): void; logger: Logger }, exit: (code: number) => void = process.exit): () => void {
  const { logger } = service;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    service.shutdown().then(() => exit(0), (e: unknown) => {
      logger.error({ err: e }, 'shutdown failed');
      exit(1);
    });
  };
  const onHangup = (): void => service.reload();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHangup);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('SIGHUP', onHangup);
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
