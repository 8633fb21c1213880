/**
 * The storage suite and the partial-blob suite on the S3 backend, against a real Ceph RGW (one per
 * file, test/helpers/ceph.ts): each case gets a fresh key prefix of one bucket, as another store.
 */
import { S3Storage } from '../../lib/storage/s3/storage.ts';
import { useRgwBucket } from '../helpers/ceph.ts';
import { partialBlobSuite } from './partial-blobs.suite.ts';
import { storageSuite } from './suite.ts';

describe('S3 backend on Ceph RGW: the storage suites', function () {
  this.timeout(60_000);
  const bucket = useRgwBucket();

  storageSuite('s3', async (opts = {}) => {
    const storage = new S3Storage(bucket.fresh(), opts.uploadLimits ? { uploadLimits: opts.uploadLimits } : {});
    await storage.init();
    return { storage, cleanup: async () => {} };
  });

  partialBlobSuite('s3', async () => {
    const store = bucket.fresh();
    const storage = new S3Storage(store);
    return {
      blobs: storage.blobs,
      partials: storage.partials,
      // A new process: only what reached the bucket.
      restarted: async () => new S3Storage(store).partials,
      close: async () => {},
    };
  });
});
