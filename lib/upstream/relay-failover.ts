/**
 * Small requests (manifests, HEADs, tag lists, chunk lists) to an upstream of several relays:
 * one relay at a time, healthy and fastest first, the next one when a relay fails (unreachable,
 * refused, 5xx, or silent for longer than a small request may take). What no relay can change
 * (not found, a protocol error) is the answer at once.
 */
import { UpstreamAuthError, UpstreamError, UpstreamRateLimitedError, UpstreamUnavailableError } from './errors.ts';
import type { UpstreamClient } from './client.ts';
import type { RelayPool } from './relay-pool.ts';

/** Longest a small request may take on one relay before the next is asked. */
export const SMALL_REQUEST_MS = 8000;

export async function firstRelay<T>(pool: RelayPool, fn: (client: UpstreamClient, signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
  let last: unknown;
  for (const member of pool.ordered()) {
    signal?.throwIfAborted();
    const timeout = AbortSignal.timeout(SMALL_REQUEST_MS);
    try {
      const result = await fn(member.client, signal ? AbortSignal.any([signal, timeout]) : timeout);
      member.succeeded(0, 0);
      return result;
    } catch (err) {
      if (signal?.aborted) throw err;
      if (!relayFailed(err) && !timeout.aborted) throw err;
      member.failed(err, err instanceof UpstreamAuthError);
      last = err;
    }
  }
  throw last;
}

/** The relay (or the way to it) failed: another relay may well answer. */
function relayFailed(err: unknown): boolean {
  if (err instanceof UpstreamAuthError || err instanceof UpstreamUnavailableError || err instanceof UpstreamRateLimitedError) return true;
  return !(err instanceof UpstreamError);
}
