/**
 * The transfer engine's RangeSource over one blob served by several relays (relay-pool.ts): each
 * request goes to a relay the pool picks (weighted by goodput), so the ranges of one blob spread
 * over all of them. A relay that fails before its answer (refused, unreachable, 5xx) is booked
 * and the request goes to the next relay at once: the engine sees an error only when no relay
 * answered. A body that a drained relay was serving fails with a retryable RelayDrainedError, so
 * the engine resumes the range at once, elsewhere. Bytes that fail verification are blamed on
 * the relays that served them (rejected()).
 *
 * A range is answered to the engine once its first byte is here, not at the relay's headers: a
 * cold relay answers at once but sends a range only when its own transfer from its registry
 * reached it. Until then the engine's stall watch, which judges answered requests against their
 * peers, leaves the request alone; the pool tells a filling relay from a dark one (it asks the
 * relay's /v2/), and the engine's fixed stall timer bounds the wait.
 */
import type { Readable } from 'node:stream';
import { TransferError, UpstreamStatusError } from '../transfer/errors.ts';
import type { ChunkDigests, RangeResponse, RangeSource } from '../transfer/range-source.ts';
import { discard, firstHeader, type Answer } from './http.ts';
import { UpstreamError } from './errors.ts';
import { errorCode, isRetryableStatus, parseRetryAfter } from '../retry/policy.ts';
import { UpstreamRequestError, toTransferError } from './range-source.ts';
import { CHUNK_LIST_WAIT_MS } from '../relay/chunk-list.ts';
import { SMALL_REQUEST_MS, firstRelay } from './relay-failover.ts';
import type { RelayMember, RelayPool, RelayRequest } from './relay-pool.ts';

/** The relay serving a body was drained: resume the range on another. */
export class RelayDrainedError extends TransferError {
  readonly code = 'RELAY_DRAINED';
  override readonly retryable = true;
  constructor(relay: string, reason: string) {
    super(`relay ${relay} drained: ${reason}`);
    this.name = 'RelayDrainedError';
  }
}

interface Served {
  start: number;
  end: number;
  member: RelayMember;
}

/** Most served ranges remembered per blob (for blame); older ones are forgotten first. */
const MAX_SERVED = 4096;

export function relayRangeSource(pool: RelayPool, repo: string, digest: string): RangeSource {
  const served: Served[] = [];
  const remember = (s: Served): void => {
    if (s.end < s.start) return;
    served.push(s);
    if (served.length > MAX_SERVED) served.shift();
  };

  const request = async (start: number, end: number | undefined, signal: AbortSignal): Promise<RangeResponse> => {
    const range = end === undefined ? (start > 0 ? `bytes=${start}-` : undefined) : `bytes=${start}-${end}`;
    const tried = new Set<RelayMember>();
    let last: unknown;
    const bytes = end === undefined ? undefined : end + 1 - start;
    for (let member = pool.pick(tried, false, bytes); member; member = pool.pick(tried, true, bytes)) {
      tried.add(member);
      signal.throwIfAborted();
      const ctrl = new AbortController();
      const req = member.begin((err) => ctrl.abort(new RelayDrainedError(member.label, err.message)), { blob: digest.slice(7, 19), start, end });
      // The caller's abort ends the request even when its body was never read (a refused Content-Range).
      const onAbort = (): void => {
        req.released();
        ctrl.abort(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const done = (): void => signal.removeEventListener('abort', onAbort);
      let answer: Answer;
      try {
        answer = await member.client.fetchBlob(repo, digest, { range, signal: ctrl.signal });
      } catch (err) {
        done();
        if (signal.aborted) {
          req.released();
          throw signal.reason;
        }
        if (ctrl.signal.aborted) {
          last = ctrl.signal.reason;
          continue;
        }
        // Our own failures (a redirect loop, a bad URL) are not the relay's to retry.
        if (err instanceof UpstreamError && !isRelayFault(err)) {
          req.released();
          throw toTransferError(err);
        }
        req.failed(err, errorCode(err) === 'ECONNREFUSED' || err instanceof UpstreamError ? 'now' : 'count');
        last = toTransferError(err);
        continue;
      }
      const status = answer.status;
      if (status === 401 || status === 403 || isRetryableStatus(status)) {
        done();
        await discard(answer.body);
        const refused = status === 401 || status === 403;
        req.failed(new Error(`answered ${status}`), refused ? 'long' : 'count');
        last = refused
          ? new UpstreamRequestError(new RelayRefusedError(pool.upstream, member.label, status))
          : new UpstreamStatusError(status, parseRetryAfter(firstHeader(answer.headers, 'retry-after')));
        continue;
      }
      if (status !== 200 && status !== 206) {
        done();
        req.released();
        return { status, headers: answer.headers, body: answer.body };
      }
      req.answered();
      const from = status === 206 ? start : 0;
      const body = await fromFirstByte(metered(answer.body, req, ctrl.signal, signal, from, remember, done));
      // Answered at its first byte (a cold relay sends it once its own transfer reached it): the relay's round trip is what its headers took at best.
      return { status, headers: answer.headers, body, roundTripMs: member.rttMs, ending: () => req.ending() };
    }
    throw last ?? new UpstreamStatusError(503);
  };

  return {
    fetchRange: (start, end, signal) => request(start, end, signal),
    fetchAll: (signal, fromOffset = 0) => request(fromOffset, undefined, signal),
    // A relay holds the request while its own transfer of the blob runs (a cold relay): not a failure of the relay.
    chunkDigests: (chunkSize, signal): Promise<ChunkDigests | undefined> => firstRelay(pool, (client, s) => client.chunkDigests(repo, digest, chunkSize, s), signal, CHUNK_LIST_WAIT_MS + SMALL_REQUEST_MS),
    rejected(start, end) {
      const blamed = new Set<RelayMember>();
      for (let i = served.length - 1; i >= 0; i--) {
        const s = served[i] as Served;
        if (s.start > end || s.end < start) continue;
        blamed.add(s.member);
        served.splice(i, 1);
      }
      for (const m of blamed) m.failed(new Error(`served bytes ${start}-${end} of ${digest} that failed their digest`), 'long');
    },
  };
}

/** A relay refused our token. */
class RelayRefusedError extends UpstreamError {
  readonly code = 'UPSTREAM_AUTH';
  constructor(upstream: string, relay: string, status: number) {
    super(upstream, `relay ${relay} refused access (${status}); check its token`, status);
    this.name = 'RelayRefusedError';
  }
}

/** Errors that say the relay (or the way to it) failed, rather than our request. */
function isRelayFault(err: UpstreamError): boolean {
  return err.status === undefined || err.status >= 500 || err.status === 401 || err.status === 403 || err.status === 429;
}

/** `body` once its first chunk arrived (or it ended or failed), whole. */
async function fromFirstByte(body: AsyncGenerator<Uint8Array>): Promise<AsyncGenerator<Uint8Array>> {
  const first = await body.next();
  return (async function* () {
    if (first.done) return;
    yield first.value;
    yield* body;
  })();
}

/** The body, counted into the relay's figures; a drained relay's body fails with the reason. */
async function* metered(
  body: Readable, req: RelayRequest, own: AbortSignal, caller: AbortSignal, from: number,
  remember: (s: Served) => void, done: () => void,
): AsyncGenerator<Uint8Array> {
  let received = 0;
  let verdict = false;
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      req.bytes(chunk.length);
      yield chunk;
    }
    verdict = true;
    req.succeeded();
  } catch (err) {
    verdict = true;
    if (caller.aborted) req.released();
    else if (own.aborted) throw own.reason;
    else req.failed(err);
    throw err;
  } finally {
    // The consumer stopped early (a split took the rest): no verdict on the relay.
    if (!verdict) {
      req.released();
      body.destroy();
    }
    remember({ start: from, end: from + received - 1, member: req.member });
    done();
  }
}
