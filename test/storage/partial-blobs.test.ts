/** The partial-blob suite on the filesystem and in memory, and what only the filesystem promises. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { FsPartialBlobStorage } from '../../lib/storage/partial-blobs-fs.ts';
import { MemoryStorage } from '../../lib/storage/memory/storage.ts';
import { openStore } from '../../lib/storage/store.ts';
import { partialBlobSuite } from './partial-blobs.suite.ts';

partialBlobSuite('filesystem', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-partials-'));
  const store = await openStore(root);
  return {
    blobs: store.blobs,
    partials: store.partials,
    restarted: async () => new FsPartialBlobStorage(store.paths, store.blobs),
    close: () => rm(root, { recursive: true, force: true }),
  };
});

partialBlobSuite('memory', async () => {
  const storage = new MemoryStorage();
  return {
    blobs: storage.blobs,
    partials: storage.partials,
    // Memory does not outlive its process: a restart is the same instance.
    restarted: async () => storage.partials,
    close: async () => {},
  };
});

describe('PartialBlobStorage: filesystem only', () => {
  it('never resumes a range the journal records past the end of the part file (the file lost its tail)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ferry-partials-'));
    try {
      const store = await openStore(root);
      const data = randomBytes(50_000);
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      const p = await store.partials.open(digest, data.length);
      await p.write(0, data);
      await p.record({ start: 0, end: data.length - 1 });
      await p.close();
      await truncate(store.paths.partial(digest, 'part'), 30_000);
      const again = await new FsPartialBlobStorage(store.paths, store.blobs).open(digest, data.length);
      assert.deepEqual(again.resumed, [{ start: 0, end: 29_999 }]);
      await again.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
