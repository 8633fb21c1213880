/**
 * While the server runs: removes push sessions that went idle and temp files whose writer is gone,
 * so neither waits for the next start (a flood of abandoned sessions would fill the disk first).
 */
import type { Logger } from '../log/logger.ts';
import type { Storage } from './storage.ts';

export interface SweeperOptions {
  uploadIdleMs: number;
  tmpMaxAgeMs: number;
  logger: Logger;
}

export interface Sweeper {
  /** One pass now (also what the timer runs). */
  sweep(): Promise<void>;
  /** No further pass; resolves once the pass in progress (if any) has ended. */
  stop(): Promise<void>;
}

/** Sweeps every quarter of the shorter age (between 1 s and 1 min), one pass at a time. */
export function startSweeper(store: Storage, { uploadIdleMs, tmpMaxAgeMs, logger }: SweeperOptions): Sweeper {
  const everyMs = Math.min(60_000, Math.max(1000, Math.min(uploadIdleMs, tmpMaxAgeMs) / 4));
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const pass = async (): Promise<void> => {
    try {
      const sessions = await store.uploads.sweep(uploadIdleMs);
      const temps = await store.blobs.sweep(tmpMaxAgeMs);
      if (sessions + temps > 0) logger.info({ sessions, temps }, 'removed idle upload sessions and stale temp files');
    } catch (err) {
      logger.error({ err }, 'sweeping idle upload sessions and temp files failed');
    }
  };
  const sweep = (): Promise<void> => {
    running = running.then(pass);
    return running;
  };
  const next = (): void => {
    if (stopped) return;
    timer = setTimeout(() => void sweep().then(next), everyMs);
    timer.unref();
  };
  next();
  return {
    sweep,
    stop() {
      stopped = true;
      clearTimeout(timer);
      return running;
    },
  };
}
