/**
 * Retries are data: the backoff of a chunk attempt. An attempt that brought new bytes was cut by
 * the link, not refused by the server, so the next one starts almost at once; attempts that
 * bring nothing back off exponentially with equal jitter, and Retry-After is honoured.
 */
export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { baseMs: 250, maxMs: 15_000 };

/** Delay before the next attempt; `failuresInARow` counts attempts without a new byte (0 after progress). */
export function backoffMs(failuresInARow: number, policy: RetryPolicy, random: () => number = Math.random, retryAfterMs?: number): number {
  let ms: number;
  if (failuresInARow <= 0) ms = random() * (policy.baseMs / 4);
  else {
    const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (failuresInARow - 1));
    ms = ceiling / 2 + random() * (ceiling / 2);
  }
  if (retryAfterMs !== undefined) ms = Math.max(ms, Math.min(retryAfterMs, policy.maxMs * 4));
  return ms;
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}
