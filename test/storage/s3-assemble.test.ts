/**
 * Assembly of pieces into one object when a piece is gone (another replica committed the same
 * blob and removed its pieces): the assembly fails with that reason, and nothing else happens (the
 * process lives on, no multipart upload is left, no object appears).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { assembleSegments } from '../../lib/storage/s3/assemble.ts';
import { useRgw } from '../helpers/ceph.ts';

describe('S3 assemble on Ceph RGW: a piece vanished mid-assembly', function () {
  this.timeout(30_000);
  const rgw = useRgw();

  it('rejects naming the piece, with no uncaught error and no object', async () => {
    const bucket = rgw().bucket(await rgw().createBucket(), 'ferry/');
    await bucket.put('pieces/a', randomBytes(1000));
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => void uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      await assert.rejects(
        assembleSegments(bucket, [{ key: 'pieces/a', start: 0, end: 999 }, { key: 'pieces/gone', start: 0, end: 999 }], 'blob'),
        /piece .*pieces\/gone vanished/,
      );
      // An 'error' emitted with no listener is thrown on a later tick.
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    assert.deepEqual(uncaught.map(String), []);
    assert.equal(await bucket.head('blob'), undefined);
  });
});
