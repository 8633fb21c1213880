/**
 * Retries as data: which statuses and error codes are worth another attempt, the backoff and its
 * ceiling, and Retry-After. Only idempotent requests are retried (the client only makes those).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RETRYABLE_STATUSES } from '../transfer/errors.ts';

/** Timeouts, throttling, and the 5xx a flaky gateway answers: one list for requests and transfers. */
export const RETRY_STATUSES: ReadonlySet<number> = RETRYABLE_STATUSES;

/** Network failures (Node's and undici's codes) that say nothing about the request itself. */
export const RETRY_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTUNREACH', 'EHOSTDOWN', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Statuses whose Retry-After we honour (RFC 9110 defines it for these and 3xx). */
export const RETRY_AFTER_STATUSES: ReadonlySet<number> = new Set([429, 503]);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase());
}

export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  /** The first backoff ceiling; it doubles each attempt. */
  baseDelayMs: number;
  /** The backoff never exceeds this. */
  maxDelayMs: number;
  /** A Retry-After longer than this is not waited for: the request fails (rate limited) instead. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { retries: 5, baseDelayMs: 250, maxDelayMs: 10_000, maxRetryAfterMs: 60_000 };

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

export function isRetryableError(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && RETRY_ERROR_CODES.has(code);
}

/** Full jitter: uniform in [0, min(max, base * 2^attempt)] (attempt counts from 0). */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
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
export function decideRetry(attempt: number, policy: RetryPolicy, retryAfterMs?: number): RetryDecision {
  if (attempt >= policy.retries) return { retry: false };
  if (retryAfterMs !== undefined) return retryAfterMs <= policy.maxRetryAfterMs ? { retry: true, delayMs: retryAfterMs } : { retry: false };
  return { retry: true, delayMs: backoffDelay(attempt, policy) };
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
