/** A small seeded PRNG (mulberry32) so a faulty run repeats given the same seed and timing. */
export type Random = () => number;

export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A draw from the exponential distribution with this mean (at least 1). */
export function exponential(random: Random, mean: number): number {
  return Math.max(1, Math.round(-Math.log(1 - random()) * mean));
}
