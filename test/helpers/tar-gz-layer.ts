/**
 * Deterministic gzipped tar layers, streamed to a file: seeded pseudo-random content (AES-128-CTR
 * keystream, far faster than gzip), fixed mtimes and owners, so the same (seed, size) always gives
 * the same bytes and a 256 MiB layer never sits in memory.
 */
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/** 2024-01-01T00:00:00Z: every entry gets this mtime. */
export const FIXED_MTIME = 1_704_067_200;

export type TarEntry =
  | { type: 'dir'; name: string; mode?: number }
  | { type: 'file'; name: string; mode?: number; data: Buffer }
  | { type: 'file'; name: string; mode?: number; size: number; seed: string };

export interface WrittenLayer {
  /** sha256 of the gzipped bytes (the blob digest). */
  digest: string;
  /** sha256 of the uncompressed tar (the config's rootfs diff_id). */
  diffId: string;
  /** Size of the gzipped blob in bytes. */
  size: number;
}

const CHUNK = 1 << 20;

/** An endless deterministic byte stream for a seed, cut to size. */
export function* seededBytes(seed: string, size: number): Generator<Buffer> {
  const key = createHash('sha256').update(`ferry-test-data:${seed}`).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const zeros = Buffer.alloc(CHUNK);
  for (let left = size; left > 0; left -= CHUNK) {
    yield cipher.update(left >= CHUNK ? zeros : zeros.subarray(0, left));
  }
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A ustar header block; names must fit the 100-byte field (tests use short names). */
export function tarHeader(name: string, size: number, mode: number, typeflag: '0' | '5'): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(FIXED_MTIME, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum placeholder: spaces while summing
  h.write(typeflag, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

export function* tarChunks(entries: TarEntry[]): Generator<Buffer> {
  for (const e of entries) {
    if (e.type === 'dir') {
      yield tarHeader(e.name.endsWith('/') ? e.name : `${e.name}/`, 0, e.mode ?? 0o755, '5');
      continue;
    }
    const size = 'data' in e ? e.data.length : e.size;
    yield tarHeader(e.name, size, e.mode ?? 0o644, '0');
    if ('data' in e) yield e.data;
    else yield* seededBytes(e.seed, e.size);
    const pad = (512 - (size % 512)) % 512;
    if (pad) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(1024); // end-of-archive marker
}

class HashTap extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/**
 * Writes the entries as tar+gzip to `file`. gzipLevel 0 (stored deflate blocks, still valid gzip)
 * is the default: random data does not compress, and level 1 costs ~10x the time.
 */
export async function writeTarGz(file: string, entries: TarEntry[], gzipLevel = 0): Promise<WrittenLayer> {
  const tarTap = new HashTap();
  const gzTap = new HashTap();
  await pipeline(
    Readable.from(tarChunks(entries), { objectMode: false }),
    tarTap,
    createGzip({ level: gzipLevel, chunkSize: CHUNK }),
    gzTap,
    createWriteStream(file),
  );
  return {
    digest: `sha256:${gzTap.hash.digest('hex')}`,
    diffId: `sha256:${tarTap.hash.digest('hex')}`,
    size: gzTap.bytes,
  };
}
