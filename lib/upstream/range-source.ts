/**
 * The transfer engine's RangeSource over one blob of an upstream registry: each call is one GET
 * (auth, redirects to a CDN with the Range kept) and returns whatever status the upstream gave,
 * since the engine judges statuses, retries and resumes itself. A failure of ours (auth refused,
 * redirect loop) becomes a TransferError the engine does not retry, with the UpstreamError as
 * `cause` for toRegistryError(); an exhausted token fetch stays retryable.
 */
import { TransferError, UpstreamStatusError } from '../transfer/errors.ts';
import { rangeSourceFrom, type RangeResponse, type RangeSource } from '../transfer/range-source.ts';
import type { UpstreamClient } from './client.ts';
import { UpstreamError, UpstreamRateLimitedError, UpstreamUnavailableError } from './errors.ts';

/** An upstream failure that is not a status the engine could judge, and that retrying cannot fix. */
export class UpstreamRequestError extends TransferError {
  readonly code = 'UPSTREAM_REQUEST';
  constructor(override readonly cause: UpstreamError) {
    super(cause.message, { cause });
    this.name = 'UpstreamRequestError';
  }
}

export function upstreamRangeSource(client: UpstreamClient, repo: string, digest: string): RangeSource {
  // A ferry relay lists per-chunk digests, so a corrupted chunk is fetched again alone.
  const chunkDigests = client.kind === 'relay'
    ? (chunkSize: number, signal?: AbortSignal) => client.chunkDigests(repo, digest, chunkSize, signal)
    : undefined;
  return rangeSourceFrom(async (range, signal): Promise<RangeResponse> => {
    try {
      const answer = await client.fetchBlob(repo, digest, { range, signal });
      return { status: answer.status, headers: answer.headers, body: answer.body };
    } catch (err) {
      throw toTransferError(err);
    }
  }, chunkDigests);
}

/** An upstream client's failure as the engine judges it (a status it may retry, or final). */
export function toTransferError(err: unknown): unknown {
  if (err instanceof UpstreamRateLimitedError) return new UpstreamStatusError(429, err.retryAfterMs, err);
  if (err instanceof UpstreamUnavailableError) return new UpstreamStatusError(err.status ?? 503, err.retryAfterMs, err);
  if (err instanceof UpstreamError) return new UpstreamRequestError(err);
  return err;
}
