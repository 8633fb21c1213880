/**
 * A RangeSource over plain HTTP(S) with undici. The link throttles each TCP connection, so every
 * request must get its own connection: HTTP/1.1, pipelining 1, and a pool large enough that
 * concurrent chunks never queue behind each other. Never HTTP/2 (one throttled connection).
 */
import { Agent, request, type Dispatcher } from 'undici';
import { rangeSourceFrom, type RangeResponse, type RangeSource } from './range-source.ts';

export interface HttpRangeSourceOptions {
  url: string;
  /** Extra request headers (Authorization...), or a function asked before each request. */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
  /** A shared dispatcher; by default one Agent per source from createTransferAgent(). */
  dispatcher?: Dispatcher;
  /** Connections per origin for the default agent. */
  connections?: number;
  chunkDigests?: RangeSource['chunkDigests'];
}

/** An undici Agent fit for chunked transfers: one request per TCP connection, HTTP/1.1 only. */
export function createTransferAgent(connections = 64): Agent {
  return new Agent({
    connections,
    pipelining: 1,
    allowH2: false,
    // The engine watches stalls itself (stallSeconds); undici's own timers would only fire later.
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 10_000,
  });
}

export interface HttpRangeSource extends RangeSource {
  /** Closes the agent this source created (a passed-in dispatcher is left alone). */
  close(): Promise<void>;
}

export function createHttpRangeSource(opts: HttpRangeSourceOptions): HttpRangeSource {
  const owned = opts.dispatcher ? undefined : createTransferAgent(opts.connections);
  const dispatcher = opts.dispatcher ?? (owned as Agent);
  const send = async (range: string | undefined, signal: AbortSignal): Promise<RangeResponse> => {
    const extra = typeof opts.headers === 'function' ? await opts.headers() : (opts.headers ?? {});
    const headers: Record<string, string> = { ...extra, 'accept-encoding': 'identity' };
    if (range) headers.range = range;
    const res = await request(opts.url, { method: 'GET', headers, signal, dispatcher });
    return { status: res.statusCode, headers: res.headers, body: res.body };
  };
  return {
    ...rangeSourceFrom(send, opts.chunkDigests),
    close: async () => {
      await owned?.close();
    },
  };
}
