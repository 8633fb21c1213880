import { MemoryStorage } from '../../lib/storage/memory/storage.ts';
import { storageSuite } from './suite.ts';

storageSuite('memory', async (opts = {}) => {
  const storage = new MemoryStorage(opts.uploadLimits ? { uploadLimits: opts.uploadLimits } : {});
  return {
    storage,
    cleanup: async () => {},
    ageBlob: async (digest, ms) => storage.blobs.setTouchedAt(digest, Date.now() - ms),
  };
});
