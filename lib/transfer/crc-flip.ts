/**
 * Where one changed byte may be in a stream, from its CRC-32 alone. CRC-32 is linear: for two
 * streams of one length, crc(a) ^ crc(b) is the CRC (no initial value, no final xor) of a ^ b. When
 * a ^ b is a single byte e at offset u, that difference is T[e] (the table entry: the CRC of e)
 * carried through k = L-1-u zero bytes, and a zero byte's step is linear and invertible. So the
 * offsets are the k with back^k(difference) = T[e] for some e: found by baby steps and giant steps
 * (T[e] carried j < STEP zero bytes, for every e, in a table; the difference walked back STEP bytes
 * at a time), some 10^5 operations for 100 MiB instead of one per byte. A wrong offset matches by
 * chance with probability 255 / 2^32 per offset: about 6 of them in 100 MiB besides the real one.
 *
 * A flip in a gzip layer's stored bytes (random or already compressed files), or one that swaps
 * a literal nothing copies later, changes one byte of the output, and the layer's CRC shows it.
 */

const TABLE = new Uint32Array(256);
/** The byte whose table entry has this top byte (the top bytes are a permutation). */
const BY_TOP = new Uint8Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c >>> 0;
  BY_TOP[c >>> 24] = n;
}

/** One zero byte on: the CRC state's step. */
function forward(s: number): number {
  return ((s >>> 8) ^ (TABLE[s & 0xff] as number)) >>> 0;
}

/** One zero byte back (forward's inverse): the top byte of the state says the byte that left. */
function back(w: number): number {
  const b = BY_TOP[w >>> 24] as number;
  return (((w ^ (TABLE[b] as number)) << 8) | b) >>> 0;
}

/** Zero bytes in a giant step; the baby table holds 255 x STEP states. */
const STEP = 512;
const SLOTS = 1 << 18;

interface Steps {
  /** Open addressing: a state (never 0: T[e] and its steps are not), and (e << 16 | j) of T[e] carried j bytes. */
  keys: Uint32Array;
  values: Uint32Array;
  /** back^STEP as four tables, one per byte of the state (the map is linear). */
  giant: Uint32Array[];
}

let steps: Steps | undefined;

function buildSteps(): Steps {
  const keys = new Uint32Array(SLOTS);
  const values = new Uint32Array(SLOTS);
  for (let e = 1; e < 256; e++) {
    let s = TABLE[e] as number;
    for (let j = 0; j < STEP; j++) {
      let slot = Math.imul(s, 0x9e3779b1) >>> 14;
      while (keys[slot] !== 0) slot = (slot + 1) & (SLOTS - 1);
      keys[slot] = s;
      values[slot] = (e << 16) | j;
      s = forward(s);
    }
  }
  const columns: number[] = [];
  for (let bit = 0; bit < 32; bit++) {
    let w = (1 << bit) >>> 0;
    for (let i = 0; i < STEP; i++) w = back(w);
    columns.push(w);
  }
  const giant = [0, 1, 2, 3].map((byte) => {
    const t = new Uint32Array(256);
    for (let x = 0; x < 256; x++) {
      let v = 0;
      for (let bit = 0; bit < 8; bit++) if (x & (1 << bit)) v ^= columns[byte * 8 + bit] as number;
      t[x] = v >>> 0;
    }
    return t;
  });
  return { keys, values, giant };
}

export interface ByteChange {
  /** Offset of the byte in the stream. */
  offset: number;
  /** What it was xored with. */
  xor: number;
}

/**
 * The offsets of a `length`-byte stream where one changed byte explains `difference` (the CRC-32 as
 * computed xor the one expected), in no particular order; undefined when more than `limit` do (they
 * say little then).
 */
export function singleByteChanges(difference: number, length: number, limit: number): ByteChange[] | undefined {
  if (difference >>> 0 === 0 || length <= 0) return [];
  steps ??= buildSteps();
  const { keys, values, giant } = steps;
  const [g0, g1, g2, g3] = giant as [Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  const found: ByteChange[] = [];
  // w = back^(STEP*i)(difference); a baby state T[e] carried j bytes equal to it: k = STEP*i + j.
  let w = difference >>> 0;
  for (let base = 0; base < length; base += STEP) {
    for (let slot = Math.imul(w, 0x9e3779b1) >>> 14; keys[slot] !== 0; slot = (slot + 1) & (SLOTS - 1)) {
      if (keys[slot] !== w) continue;
      const v = values[slot] as number;
      const k = base + (v & 0xffff);
      if (k >= length) continue;
      found.push({ offset: length - 1 - k, xor: v >>> 16 });
      if (found.length > limit) return undefined;
    }
    w = ((g0[w & 0xff] as number) ^ (g1[(w >>> 8) & 0xff] as number) ^ (g2[(w >>> 16) & 0xff] as number) ^ (g3[w >>> 24] as number)) >>> 0;
  }
  return found;
}
