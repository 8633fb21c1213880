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
  | { type: 'file'; name: string; mode?: number; size: number; seed: string; content?: SeededContent };

/** Seeded file content: random bytes (incompressible), or bytes that compress as a real layer's do (seededLikeFiles). */
export type SeededContent = 'random' | 'like-files';

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

/** A fixed vocabulary of made-up words, 2 to 12 letters: text from it compresses like prose or source. */
const WORDS: string[] = (() => {
  const words: string[] = [];
  const key = seededBytes('ferry-words', 4096).next().value as Buffer;
  const letters = 'etaoinshrdlucmfwypvbgkqjxz_';
  for (let i = 0; words.length < 1024; i += 2) {
    const len = 2 + ((key[i % key.length] as number) % 11);
    let w = '';
    for (let j = 0; j < len; j++) w += letters[Math.floor((((key[(i * 7 + j * 13) % key.length] as number) / 256) ** 2) * letters.length)];
    words.push(w);
  }
  return words;
})();

/**
 * Seeded bytes that compress roughly as a real image layer does (gzip -6: ~3x): runs of text made
 * of the word list (source, configs, docs), of short byte sequences from a small set (machine
 * code, tables) and of random
 * bytes (already compressed files), 13:6:1, switching every 1 to 256 KiB.
 */
export function* seededLikeFiles(seed: string, size: number): Generator<Buffer> {
  const random = seededBytes(`${seed}/like-files`, Number.MAX_SAFE_INTEGER);
  let pool = Buffer.alloc(0);
  let at = 0;
  const take = (n: number): Buffer => {
    if (at + n > pool.length) {
      pool = Buffer.concat([pool.subarray(at), random.next().value as Buffer]);
      at = 0;
    }
    at += n;
    return pool.subarray(at - n, at);
  };
  for (let left = size; left > 0;) {
    const head = take(4);
    const kind = (head[0] as number) % 20;
    const run = Math.min(left, 1024 * 2 ** ((head[1] as number) % 9));
    let out: Buffer;
    if (kind < 13) {
      const parts: string[] = [];
      let n = 0;
      for (const b of take(Math.ceil(run / 3))) {
        const w = WORDS[(b * 4 + ((head[2] as number) & 3)) % WORDS.length] as string;
        const sep = b % 17 === 0 ? '\n' : b % 11 === 0 ? ', ' : ' ';
        parts.push(w, sep);
        n += w.length + sep.length;
        if (n >= run) break;
      }
      out = Buffer.from(parts.join('')).subarray(0, run);
      if (out.length < run) out = Buffer.concat([out, Buffer.alloc(run - out.length, 0x20)]);
    } else if (kind < 19) {
      // Machine code and tables: short byte sequences from a small set, again and again.
      const tokens = take(64 * 12);
      const picks = take(run);
      const parts: Buffer[] = [];
      for (let i = 0, n = 0; n < run; i++) {
        const t = (picks[i % picks.length] as number) % 64;
        const token = tokens.subarray(t * 12, t * 12 + 3 + (t % 10));
        parts.push(token);
        n += token.length;
      }
      out = Buffer.concat(parts).subarray(0, run);
    } else {
      out = Buffer.from(take(run));
    }
    left -= out.length;
    yield out;
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
    else if (e.content === 'like-files') yield* seededLikeFiles(e.seed, e.size);
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
