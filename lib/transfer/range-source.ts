/**
 * What the engine pulls bytes from. The upstream client implements it for a registry blob URL
 * (auth, redirects to a CDN); http-range-source.ts is the plain HTTP one. Ranges are inclusive.
 */
import type { Readable } from 'node:stream';

export type ResponseHeaders = Record<string, string | string[] | undefined>;

export interface RangeResponse {
  status: number;
  /** Lower-case names; content-range and content-length at least. */
  headers: ResponseHeaders;
  body: Readable | AsyncIterable<Uint8Array>;
  /**
   * The route's round trip as the source knows it (a relay's least time to response headers), when
   * this request's own time to its answer says more than the route: a relay answers a range at its
   * first byte, after its own transfer reached it, and a request may wait for a socket of its relay.
   * The request hands its connection on a round trip from its end (range-fetcher.ts endingWatch).
   */
  roundTripMs?: number | undefined;
  /**
   * Told once the request's connection was handed on in its last round trip (LinkGrant.ending): a
   * source of several relays no longer counts it against its relay's connections, so the request
   * asked now finds room on a relay instead of landing beyond every relay's own limit.
   */
  ending?(): void;
}

export interface ChunkDigests {
  /** Every chunk has this size except the last. */
  chunkSize: number;
  /** "sha256:<hex>" (or bare hex) of each chunk, in order. */
  digests: string[];
}

export interface RangeSource {
  /** GET with `Range: bytes=start-end`. The signal aborts the request and its body. */
  fetchRange(start: number, end: number, signal: AbortSignal): Promise<RangeResponse>;
  /** GET of the whole blob, or with `Range: bytes=fromOffset-` when fromOffset > 0. */
  fetchAll(signal: AbortSignal, fromOffset?: number): Promise<RangeResponse>;
  /**
   * Digests of the blob's pieces cut at `chunkSize` (a ferry relay offers them, `/chunks?size=`),
   * so each piece is verified on arrival and a corrupted one is fetched again alone. undefined
   * when the source has none for that size.
   */
  chunkDigests?(chunkSize: number, signal?: AbortSignal): Promise<ChunkDigests | undefined>;
  /** Told which bytes (inclusive) failed verification, so a source of several relays can drain the one that served them. */
  rejected?(start: number, end: number): void;
}

/**
 * A RangeSource from one request function: `range` is the Range header value to send, or
 * undefined for a plain GET. For upstream clients that already know how to make a request.
 */
export function rangeSourceFrom(
  request: (range: string | undefined, signal: AbortSignal) => Promise<RangeResponse>,
  chunkDigests?: RangeSource['chunkDigests'],
): RangeSource {
  return {
    fetchRange: (start, end, signal) => request(`bytes=${start}-${end}`, signal),
    fetchAll: (signal, fromOffset = 0) => request(fromOffset > 0 ? `bytes=${fromOffset}-` : undefined, signal),
    ...(chunkDigests ? { chunkDigests } : {}),
  };
}

export function header(headers: ResponseHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
