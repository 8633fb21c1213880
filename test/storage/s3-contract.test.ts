/** The storage contract (suite.ts) on the S3 backend over a real Ceph RGW; the S3-only promises are in s3-backend.test.ts. */
import type { S3Bucket } from '../../lib/storage/s3/bucket.ts';
import { S3Storage } from '../../lib/storage/s3/storage.ts';
import { useRgw } from '../helpers/ceph.ts';
import { storageSuite } from './suite.ts';

describe('S3 backend on Ceph RGW: the storage contract', function () {
  this.timeout(60_000);
  const rgw = useRgw();
  let root: S3Bucket;
  let n = 0;
  before(async () => {
    root = rgw().bucket(await rgw().createBucket());
  });
  storageSuite('s3', async (opts = {}) => {
    const storage = new S3Storage(root.under(`c${++n}/`), opts.uploadLimits ? { uploadLimits: opts.uploadLimits } : {});
    await storage.init();
    return { storage, cleanup: async () => {} };
  });
});
