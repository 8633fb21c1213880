import { MemoryStorage } from '../../lib/storage/memory/storage.ts';
import { storageSuite } from './suite.ts';

storageSuite('memory', async (opts = {}) => ({
  storage: new MemoryStorage(opts.uploadLimits ? { uploadLimits: opts.uploadLimits } : {}),
  cleanup: async () => {},
}));
