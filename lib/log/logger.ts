/**
 * pino, JSON by default and readable on a terminal. Field names are fixed across modules:
 * requestId, repository, reference, digest, upstream, status, bytes, durationMs.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LogOptions {
  level?: string;
  format?: 'auto' | 'json' | 'pretty';
}

/** pino-pretty on a terminal: one line per entry (a request is one line, its fields after the message). */
export const PRETTY_OPTIONS = { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true } as const;

export function createLogger(opts: LogOptions = {}, destination?: NodeJS.WritableStream): Logger {
  const level = opts.level ?? 'info';
  const pretty = opts.format === 'pretty' || (opts.format !== 'json' && destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    return pino({ level, base: undefined, transport: { target: 'pino-pretty', options: PRETTY_OPTIONS } });
  }
  return destination
    ? pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination as never)
    : pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = pino({ level: 'silent' });
