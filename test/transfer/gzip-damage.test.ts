/**
 * Issue 12 point 1 (cost): a gzip layer's own bytes say where a flipped byte most likely is, so a
 * repair without piece digests compares the pieces there first (gzip-damage.ts).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { InflateRaw } from 'node:zlib';
import { DamageFollower, DamageWatch, firstDamage, locateDamage } from '../../lib/transfer/gzip-damage.ts';
import { buildLikeFilesLayer, buildRandomLayer } from '../helpers/oci-image.ts';
import { makeBlob } from './range-server.ts';

const KiB = 1024;
const PIECE = 256 * KiB;

function reader(b: Buffer): { read(pos: number, into: Uint8Array): Promise<number> } {
  return {
    read: async (pos, into) => {
      const s = b.subarray(pos, pos + into.length);
      into.set(s);
      return s.length;
    },
  };
}

/** Positions spread over the blob (seeded by a step, not by chance). */
function flipsOf(size: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.floor(((i + 0.37) / count) * size));
}

describe('gzip damage: where a flipped byte shows in a gzip layer', function () {
  this.timeout(60_000);

  it('says nothing of an intact layer, of a blob that is no gzip, or of a flip in random stored bytes', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 4 * 1024 * KiB)).path);
    assert.equal(await firstDamage(reader(layer), layer.length), undefined);
    const plain = makeBlob(512 * KiB, 3);
    plain[1000] = (plain[1000] as number) ^ 0x10;
    assert.equal(await firstDamage(reader(plain), plain.length), undefined);
    // A layer of random bytes, stored (gzip level 0): nothing but the CRC at the end sees a flip.
    const random = Buffer.from(await readFile((await buildRandomLayer('gzip-damage-random', 1024 * KiB)).path));
    random[300_000] = (random[300_000] as number) ^ 0x10;
    assert.equal(await firstDamage(reader(random), random.length), undefined);
  });

  it('places most flips of a compressible layer within a piece after them, and never before one', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 4 * 1024 * KiB)).path);
    const flips = flipsOf(layer.length, 16);
    let near = 0;
    for (const [i, pos] of flips.entries()) {
      const damaged = Buffer.from(layer);
      damaged[pos] = (damaged[pos] as number) ^ (0x11 + i * 13);
      const at = await firstDamage(reader(damaged), damaged.length);
      if (at === undefined) continue;
      assert.ok(at > pos, `a flip at ${pos} placed at ${at}, before it`);
      if (at - pos <= PIECE + 64 * KiB) near++;
    }
    assert.ok(near >= flips.length / 2, `only ${near} of ${flips.length} flips placed within a piece`);
  });

  it('reads the store a MiB at a time (each read of an S3 partial blob is a ranged GET), placing as closely', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 4 * 1024 * KiB)).path);
    const intact = reader(layer);
    let reads = 0;
    const counted = { read: (pos: number, into: Uint8Array) => { reads++; return intact.read(pos, into); } };
    assert.equal(await firstDamage(counted, layer.length), undefined);
    // The gzip magic, then the blob a MiB at a time.
    assert.ok(reads <= 1 + Math.ceil(layer.length / (1024 * KiB)), `${reads} reads of a ${layer.length}-byte layer`);
    const pos = Math.floor(layer.length * 0.6);
    const damaged = Buffer.from(layer);
    damaged[pos] = (damaged[pos] as number) ^ 0x5a;
    const at = await firstDamage(reader(damaged), damaged.length);
    assert.ok(at !== undefined && at > pos && at - pos <= PIECE + 64 * KiB, `a flip at ${pos} placed at ${String(at)}`);
  });

  it('bounds a placed flip from below too (the last tar header that summed right): one or two pieces to compare', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 4 * 1024 * KiB)).path);
    const flips = flipsOf(layer.length, 16);
    let placed = 0;
    let narrow = 0;
    for (const [i, pos] of flips.entries()) {
      const damaged = Buffer.from(layer);
      damaged[pos] = (damaged[pos] as number) ^ (0x11 + i * 13);
      const d = await locateDamage(reader(damaged), damaged.length);
      if (d?.before === undefined) continue;
      placed++;
      assert.ok(d.after !== undefined && d.after <= pos && pos < d.before, `a flip at ${pos} placed in [${d.after}, ${d.before})`);
      if (Math.floor((d.before - 1) / PIECE) - Math.floor(d.after / PIECE) <= 1) narrow++;
    }
    assert.ok(placed >= flips.length / 2, `only ${placed} of ${flips.length} flips placed`);
    assert.ok(narrow >= placed * 0.75, `only ${narrow} of ${placed} placed flips narrowed to two pieces`);
  });

  it('names the few places a flip that leaves the output its length can be, from the gzip CRC (stored bytes: random or compressed files)', async () => {
    const random = await readFile((await buildRandomLayer('gzip-damage-random', 4 * 1024 * KiB)).path);
    assert.equal(await locateDamage(reader(random), random.length), undefined);
    for (const pos of flipsOf(random.length, 6)) {
      const damaged = Buffer.from(random);
      damaged[pos] = (damaged[pos] as number) ^ 0x24;
      const d = await locateDamage(reader(damaged), damaged.length);
      assert.equal(d?.before, undefined);
      const suspects = d?.suspects ?? [];
      assert.ok(suspects.some((r) => r.start <= pos && pos <= r.end), `a flip at ${pos} is not among the suspects ${JSON.stringify(suspects)}`);
      // The real one, few by chance in 4 MiB, and the trailer; each a feed of 64 KiB at most and a little.
      assert.ok(suspects.length <= 4, `${suspects.length} suspects`);
      for (const r of suspects) assert.ok(r.end - r.start < 64 * KiB + 128, `a suspect of ${r.end - r.start + 1} bytes`);
    }
  });

  it('inflates in few trips through the event loop (each a wait behind a busy mirror\'s link), not one per 16 KiB of output', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 16 * 1024 * KiB)).path);
    // Each output buffer zlib hands back is a trip from the thread pool through the event loop.
    const proto = InflateRaw.prototype as unknown as { push(chunk: unknown): boolean };
    let outputs = 0;
    const own = Object.getOwnPropertyDescriptor(proto, 'push');
    const push = proto.push;
    proto.push = function (this: unknown, chunk: unknown) {
      if (chunk !== null) outputs++;
      return push.call(this, chunk);
    };
    try {
      assert.equal(await locateDamage(reader(layer), layer.length), undefined);
    } finally {
      if (own) Object.defineProperty(proto, 'push', own);
      else delete (proto as { push?: unknown }).push;
    }
    // A feed of 64 KiB is a trip or two; 16 KiB of output at a time were ~13 per feed (the layer inflates ~3x, some of it ~10x).
    const feeds = Math.ceil(layer.length / (64 * KiB));
    assert.ok(outputs > 0 && outputs <= 2 * feeds, `${outputs} outputs for ${feeds} feeds of a ${layer.length}-byte layer`);
  });

  it('watches a layer pushed in pieces of any size as it arrives (DamageWatch) and says what reading it whole says; a gap mutes it', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 4 * 1024 * KiB)).path);
    const random = await readFile((await buildRandomLayer('gzip-damage-random', 1024 * KiB)).path);
    const cases: Buffer[] = [layer, random];
    for (const [i, pos] of flipsOf(layer.length, 4).entries()) {
      const damaged = Buffer.from(layer);
      damaged[pos] = (damaged[pos] as number) ^ (0x21 + i);
      cases.push(damaged);
    }
    const storedFlip = Buffer.from(random);
    storedFlip[500_000] = (storedFlip[500_000] as number) ^ 0x42;
    cases.push(storedFlip);
    for (const blob of cases) {
      const watch = new DamageWatch(blob.length);
      // A byte, then 7, then 100 KiB at a time: a header split over pushes too.
      for (let pos = 0, n = 1; pos < blob.length; pos += n, n = n === 1 ? 7 : 100 * KiB) {
        watch.push(pos, blob.subarray(pos, pos + n));
        if (n > 7) await watch.drained();
      }
      assert.ok(watch.whole);
      assert.deepEqual(await watch.result(), await locateDamage(reader(blob), blob.length));
      watch.stop();
    }
    const gap = new DamageWatch(layer.length);
    gap.push(0, layer.subarray(0, 1000));
    gap.push(2000, layer.subarray(2000, 3000));
    assert.equal(gap.whole, false);
    assert.equal(await gap.result(), undefined);
  });

  it('stops watching, holding no more copies, when the bytes come faster than they inflate by 4 MiB (a starved process)', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 32 * 1024 * KiB)).path);
    const watch = new DamageWatch(layer.length);
    // Pushed at once, never waited for: the inflater cannot have kept up.
    for (let pos = 0; pos < layer.length; pos += 1024 * KiB) watch.push(pos, layer.subarray(pos, pos + 1024 * KiB));
    assert.equal(watch.active, false);
    assert.equal(watch.whole, false);
    assert.equal(await watch.result(), undefined);
  });

  it('follows a blob being stored (DamageFollower) however far it moves at once: reads it back at its own pace and says what reading it whole says', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 32 * 1024 * KiB)).path);
    const damaged = Buffer.from(layer);
    const pos = Math.floor(layer.length * 0.7);
    damaged[pos] = (damaged[pos] as number) ^ 0x33;
    for (const blob of [layer, damaged]) {
      const follower = new DamageFollower(reader(blob), blob.length);
      // A prefix catching up: a MiB, then everything at once.
      follower.advance(1024 * KiB);
      follower.advance(blob.length);
      assert.ok(follower.whole);
      assert.deepEqual(await follower.result(), await locateDamage(reader(blob), blob.length));
      follower.stop();
    }
  });

  it('takes the bytes the prefix hash hands it as they are while it keeps up, reading back only what it could not take', async () => {
    const layer = await readFile((await buildLikeFilesLayer('gzip-damage', 16 * 1024 * KiB)).path);
    const damaged = Buffer.from(layer);
    const at = Math.floor(layer.length * 0.6);
    damaged[at] = (damaged[at] as number) ^ 0x33;
    for (const blob of [layer, damaged]) {
      let readBack = 0;
      const counting = reader(blob);
      const follower = new DamageFollower({ read: async (pos, into) => { const n = await counting.read(pos, into); readBack += n; return n; } }, blob.length);
      // The hash's pace: 64 KiB every 5 ms (12.5 MiB/s, a fast link's).
      for (let pos = 0; pos < blob.length; pos += 64 * KiB) {
        const bytes = Buffer.from(blob.subarray(pos, pos + 64 * KiB));
        follower.advance(pos + bytes.length, bytes);
        bytes.fill(0); // the caller's buffer is reused at once
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.ok(follower.whole);
      assert.deepEqual(await follower.result(), await locateDamage(reader(blob), blob.length));
      assert.ok(readBack < blob.length / 2, `read back ${readBack} of ${blob.length} bytes it was handed`);
      follower.stop();
    }
  });
});
