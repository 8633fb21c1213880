import assert from 'node:assert/strict';
import { isRegistryError } from '../../lib/oci/errors.ts';
import { LocalRegistry } from '../../lib/registry/local.ts';
import { MemoryStorage } from '../../lib/storage/memory/storage.ts';

/** Counts the looks at blobs (stat, size, has) of a memory store. */
function counted(storage: MemoryStorage): { looks: number; stats: number } {
  const n = { looks: 0, stats: 0 };
  const { blobs } = storage;
  const stat = blobs.stat.bind(blobs);
  const size = blobs.size.bind(blobs);
  const has = blobs.has.bind(blobs);
  blobs.stat = (d) => (n.looks++, n.stats++, stat(d));
  blobs.size = (d) => (n.looks++, size(d));
  blobs.has = (d) => (n.looks++, has(d));
  return n;
}

describe('LocalRegistry.getBlob looks at the blob only for a repository that holds it', () => {
  it('answers BLOB_UNKNOWN for a blob the repository does not hold without looking at the blob (a pull-through miss asks two repositories first)', async () => {
    const storage = new MemoryStorage();
    const digest = await storage.blobs.putBytes(Buffer.from('held for another repository'));
    await storage.repositories.linkBlob('team/other', digest);
    const n = counted(storage);
    const err = await new LocalRegistry(storage).getBlob('team/app', digest).then(() => undefined, (e: unknown) => e);
    assert.ok(isRegistryError(err), String(err));
    assert.equal(err.code, 'BLOB_UNKNOWN');
    assert.equal(n.looks, 0);
  });

  it('answers BLOB_UNKNOWN for a blob the repository does not hold even when the store would fail the look', async () => {
    const storage = new MemoryStorage();
    storage.blobs.stat = () => Promise.reject(new Error('store down'));
    storage.blobs.size = () => Promise.reject(new Error('store down'));
    const err = await new LocalRegistry(storage).getBlob('team/app', `sha256:${'a'.repeat(64)}`).then(() => undefined, (e: unknown) => e);
    assert.ok(isRegistryError(err), String(err));
    assert.equal(err.code, 'BLOB_UNKNOWN');
  });

  it('looks at a held blob once, for its size only (no touchedAt: S3 would read the touch record too)', async () => {
    const storage = new MemoryStorage();
    const digest = await storage.blobs.putBytes(Buffer.from('xyz'));
    await storage.repositories.linkBlob('team/app', digest);
    const n = counted(storage);
    const handle = await new LocalRegistry(storage).getBlob('team/app', digest);
    assert.equal(handle.size, 3);
    assert.deepEqual(n, { looks: 1, stats: 0 });
  });

  it('still reports the store failure for a blob the repository holds', async () => {
    const storage = new MemoryStorage();
    const digest = await storage.blobs.putBytes(Buffer.from('x'));
    await storage.repositories.linkBlob('team/app', digest);
    storage.blobs.size = () => Promise.reject(new Error('store down'));
    await assert.rejects(new LocalRegistry(storage).getBlob('team/app', digest), /store down/);
  });
});
