/**
 * Small requests (manifests, HEADs, tag lists, piece lists) to an upstream of several relays:
 * healthy and fastest relay first; when it fails (unreachable, refused, 5xx) the next one, and
 * when it has not answered within HEDGE_MS the next one too, the first answer winning (a relay
 * that just went dark must not hold a manifest for long). What no relay can change (not found, a
 * protocol error) is the answer at once.
 */
import { UpstreamAuthError, UpstreamError, UpstreamRateLimitedError, UpstreamUnavailableError } from './errors.ts';
import type { UpstreamClient } from './client.ts';
import type { RelayMember, RelayPool } from './relay-pool.ts';

/** Longest a small request may take on one relay. */
export const SMALL_REQUEST_MS = 8000;
/** Without an answer by then, the next relay is asked as well. */
export const HEDGE_MS = 2000;

/** `timeoutMs`: longest one relay may take (longer for what a relay holds on purpose, a piece list it is still fetching). */
export function firstRelay<T>(pool: RelayPool, fn: (client: UpstreamClient, signal: AbortSignal) => Promise<T>, signal?: AbortSignal, timeoutMs = SMALL_REQUEST_MS): Promise<T> {
  const order = pool.ordered();
  const all = new AbortController();
  const onAbort = (): void => all.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  return new Promise<T>((resolve, reject) => {
    let next = 0;
    let pending = 0;
    let settled = false;
    let last: unknown;
    let hedge: NodeJS.Timeout | undefined;
    const finish = (ok: boolean, value: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(hedge);
      signal?.removeEventListener('abort', onAbort);
      all.abort();
      if (ok) resolve(value as T);
      else reject(value);
    };
    const launch = (): void => {
      clearTimeout(hedge);
      const member = order[next++] as RelayMember | undefined;
      if (!member) {
        if (pending === 0) finish(false, last);
        return;
      }
      pending++;
      hedge = setTimeout(launch, HEDGE_MS);
      const timeout = AbortSignal.timeout(timeoutMs);
      fn(member.client, AbortSignal.any([all.signal, timeout])).then((value) => {
        member.succeeded(0, 0);
        finish(true, value);
      }, (err: unknown) => {
        pending--;
        if (settled) return;
        if (signal?.aborted) return finish(false, err);
        if (!relayFailed(err) && !timeout.aborted) return finish(false, err);
        member.failed(err, err instanceof UpstreamAuthError ? 'long' : 'count');
        last = err;
        launch();
      });
    };
    if (signal?.aborted) return finish(false, signal.reason);
    launch();
  });
}

/** The relay (or the way to it) failed: another relay may well answer. */
function relayFailed(err: unknown): boolean {
  if (err instanceof UpstreamAuthError || err instanceof UpstreamUnavailableError || err instanceof UpstreamRateLimitedError) return true;
  return !(err instanceof UpstreamError);
}
