/**
 * Issue 12 point 1 (cost): where one changed byte of a stream can be, from its CRC-32 alone
 * (crc-flip.ts): a flip that leaves a gzip layer's output its length shows only in its CRC.
 */
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { singleByteChanges } from '../../lib/transfer/crc-flip.ts';
import { makeBlob } from './range-server.ts';

describe('crc flip: the offsets one changed byte explains a CRC-32 difference by', () => {
  it('finds the changed byte and what it was xored with, among a few that match by chance', () => {
    const data = makeBlob(3 * 1024 * 1024 + 17, 5);
    for (const [offset, xor] of [[0, 0x01], [1_234_567, 0x5a], [data.length - 1, 0xff], [2_000_000, 0x80]] as const) {
      const changed = Buffer.from(data);
      changed[offset] = (changed[offset] as number) ^ xor;
      const found = singleByteChanges((crc32(data) ^ crc32(changed)) >>> 0, data.length, 24);
      assert.ok(found, 'too many offsets');
      assert.ok(found.some((c) => c.offset === offset && c.xor === xor), `${offset} not among ${JSON.stringify(found)}`);
      // 255 / 2^32 a byte by chance: 3 MiB gives none most of the time.
      assert.ok(found.length <= 4, `${found.length} offsets for 3 MiB`);
      for (const c of found) {
        const other = Buffer.from(data);
        other[c.offset] = (other[c.offset] as number) ^ c.xor;
        assert.equal(crc32(other), crc32(changed), `offset ${c.offset} does not explain the CRC`);
      }
    }
  });

  it('says nothing changed for no difference, and gives up past the limit', () => {
    assert.deepEqual(singleByteChanges(0, 1000, 4), []);
    const data = makeBlob(64 * 1024 * 1024, 6);
    const changed = Buffer.from(data);
    changed[7] = (changed[7] as number) ^ 3;
    assert.equal(singleByteChanges((crc32(data) ^ crc32(changed)) >>> 0, data.length, 0), undefined);
  });
});
