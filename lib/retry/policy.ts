/**
 * The one retry policy of ferry, as data: which statuses and network errors are worth another
 * attempt (an allowlist, like undici's retry handler), the backoff, its ceiling and jitter, and
 * how much of a Retry-After we honour. The upstream client, the transfer engine and prewarm all
 * use it. Anything not listed is not retried: a local I/O error (ENOSPC on a part file) or a bug
 * fails at once instead of being tried again for hours.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryPolicy {
  /** Attempts after the first. */
  attempts: number;
  /** The first backoff ceiling; it doubles with each failure in a row. */
  baseMs: number;
  /** The backoff never exceeds this. */
  maxMs: number;
  /** full: uniform in [0, ceiling); equal: in [ceiling/2, ceiling) (never retries at once). */
  jitter: 'full' | 'equal';
  /** The longest Retry-After honoured: a request gives up instead, a transfer waits this much. */
  maxRetryAfterMs: number;
}

/** Each user's policy; the attempts of the upstream client and the engine come from the config. */
export const RETRY_POLICIES = {
  /** Manifests, HEADs, tokens, tag lists: a request a client is waiting for. */
  upstream: { attempts: 5, baseMs: 250, maxMs: 10_000, jitter: 'full', maxRetryAfterMs: 60_000 },
  /** One chunk of a transfer: resumes where it stopped, so it may try for long (transfer.retries). */
  transfer: { attempts: 1000, baseMs: 250, maxMs: 15_000, jitter: 'equal', maxRetryAfterMs: 60_000 },
  /** Prewarm's blob GETs from the mirror. */
  prewarm: { attempts: 4, baseMs: 1000, maxMs: 30_000, jitter: 'full', maxRetryAfterMs: 60_000 },
} as const satisfies Record<string, RetryPolicy>;

/** Timeouts, throttling, and the 5xx a flaky gateway answers. */
export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 425, 429, 500, 502, 503, 504]);

/** Network failures (Node's and undici's codes) that say nothing about the request itself. */
export const RETRY_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTUNREACH', 'EHOSTDOWN', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Statuses whose Retry-After we honour (RFC 9110 defines it for these and 3xx). */
export const RETRY_AFTER_STATUSES: ReadonlySet<number> = new Set([429, 503]);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase());
}

export function isRetryableStatus(status: number): boolean {
  return RETRY_STATUSES.has(status);
}

/** The error's code, or that of its cause (undici wraps socket errors). */
export function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** A network failure of the list, or an HTTP parser error of a garbled answer (undici's carries no code for some). */
export function isRetryableError(err: unknown): boolean {
  const code = errorCode(err);
  if (code !== undefined && (RETRY_ERROR_CODES.has(code) || code.startsWith('HPE_'))) return true;
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { name?: unknown }).name === 'HTTPParserError') return true;
  }
  return false;
}

/**
 * Delay before the next attempt. `failuresInARow` counts failed attempts since the last progress,
 * from 1; 0 means the last attempt brought bytes (the link cut it): go again almost at once.
 * A Retry-After (ms) is honoured up to the policy's cap.
 */
export function backoffMs(failuresInARow: number, policy: RetryPolicy, random: () => number = Math.random, retryAfterMs?: number): number {
  let ms: number;
  if (failuresInARow <= 0) ms = random() * (policy.baseMs / 4);
  else {
    const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (failuresInARow - 1));
    ms = policy.jitter === 'full' ? random() * ceiling : ceiling / 2 + random() * (ceiling / 2);
  }
  if (retryAfterMs !== undefined) ms = Math.max(ms, Math.min(retryAfterMs, policy.maxRetryAfterMs));
  return Math.floor(ms);
}

/** Retry-After as delta-seconds or an HTTP date, in ms from `now`; undefined when absent or garbage. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

export type RetryDecision = { retry: true; delayMs: number } | { retry: false };

/**
 * What to do after attempt `attempt` (from 0) failed. A Retry-After (already in ms) replaces the
 * backoff; one longer than the policy allows ends the retries so the caller reports the wait
 * instead of sitting in it.
 */
export function decideRetry(attempt: number, policy: RetryPolicy, retryAfterMs?: number, random: () => number = Math.random): RetryDecision {
  if (attempt >= policy.attempts) return { retry: false };
  if (retryAfterMs !== undefined) return retryAfterMs <= policy.maxRetryAfterMs ? { retry: true, delayMs: retryAfterMs } : { retry: false };
  return { retry: true, delayMs: backoffMs(attempt + 1, policy, random) };
}

/** A failed attempt, for the retry log line. */
export interface RetryEvent {
  attempt: number;
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  signal?: AbortSignal | undefined;
  /** Classifies a failure: retryable, and how long the server asked us to wait. */
  classify: (err: unknown) => { retryable: boolean; retryAfterMs?: number | undefined };
  onRetry?: (event: RetryEvent) => void;
}

/**
 * Runs `attempt` until it succeeds, fails for good, or the policy is spent; the last failure is
 * rethrown as is (the caller's errors already say what happened). An abort ends it at once.
 */
export async function withRetries<T>(policy: RetryPolicy, attempt: (n: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (opts.signal?.aborted) throw error;
      const c = opts.classify(error);
      if (!c.retryable) throw error;
      const decision = decideRetry(n, policy, c.retryAfterMs);
      if (!decision.retry) throw error;
      opts.onRetry?.({ attempt: n, delayMs: decision.delayMs, error });
      await waitBeforeRetry(decision.delayMs, opts.signal);
    }
  }
}

/** Waits, but gives up at once when the signal aborts. */
export async function waitBeforeRetry(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, signal ? { signal } : undefined);
}
