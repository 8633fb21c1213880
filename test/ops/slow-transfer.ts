/**
 * A pull-through transfer without an upstream registry: Transfers over the real transfer engine,
 * reading a generated blob from an in-process RangeSource that trickles bytes at a set rate per
 * connection (like the throttled link), so a transfer stays in progress long enough to watch.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { TransferConfig } from '../../lib/config/schema.ts';
import type { RangeResponse, RangeSource } from '../../lib/transfer/range-source.ts';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export function makeBlob(size: number): { data: Buffer; digest: string } {
  const data = randomBytes(size);
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

export interface SlowSource extends RangeSource {
  /** Bytes sent so far. */
  sent: number;
  /** Per-connection rate, bytes/s; change it at any time (e.g. to finish quickly). */
  bytesPerSecond: number;
}

export function slowSource(data: Buffer, bytesPerSecond: number): SlowSource {
  const src: SlowSource = {
    sent: 0,
    bytesPerSecond,
    fetchRange: (start, end, signal) => Promise.resolve(respond(206, start, end, signal)),
    fetchAll: (signal, from = 0) => Promise.resolve(respond(from > 0 ? 206 : 200, from, data.length - 1, signal)),
  };
  const TICK_MS = 50;
  function respond(status: number, start: number, end: number, signal: AbortSignal): RangeResponse {
    let pos = start;
    const body = new Readable({
      read() {
        const timer = setTimeout(() => {
          if (signal.aborted) return body.destroy(signal.reason as Error);
          if (pos > end) return body.push(null);
          const n = Math.max(1, Math.min(end + 1 - pos, Math.round((src.bytesPerSecond * TICK_MS) / 1000)));
          const chunk = data.subarray(pos, pos + n);
          pos += n;
          src.sent += n;
          body.push(chunk);
        }, TICK_MS);
        signal.addEventListener('abort', () => { clearTimeout(timer); body.destroy(signal.reason as Error); }, { once: true });
      },
    });
    const headers: Record<string, string> = { 'content-length': String(end + 1 - start) };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${data.length}`;
    return { status, headers, body };
  }
  return src;
}

export const FAST_TRANSFER: Partial<TransferConfig> = {
  minChunkBytes: 256 * KiB,
  maxChunkBytes: 256 * KiB,
  smallBlobBytes: 64 * KiB,
  minConnections: 4,
  maxConnections: 4,
  stallSeconds: 5,
};

