import assert from 'node:assert/strict';
import { isRegistryError } from '../../lib/oci/errors.ts';
import { LocalRegistry } from '../../lib/registry/local.ts';
import { MemoryStorage } from '../../lib/storage/memory/storage.ts';

describe('LocalRegistry.getBlob asks the link and the stat together', () => {
  it('answers BLOB_UNKNOWN for a blob the repository does not hold even when the store fails the stat (review: it became the store error)', async () => {
    const storage = new MemoryStorage();
    storage.blobs.stat = () => Promise.reject(new Error('store down'));
    const local = new LocalRegistry(storage);
    const err = await local.getBlob('team/app', `sha256:${'a'.repeat(64)}`).then(() => undefined, (e: unknown) => e);
    assert.ok(isRegistryError(err), String(err));
    assert.equal(err.code, 'BLOB_UNKNOWN');
  });

  it('still reports the store failure for a blob the repository holds', async () => {
    const storage = new MemoryStorage();
    const digest = await storage.blobs.putBytes(Buffer.from('x'));
    await storage.repositories.linkBlob('team/app', digest);
    storage.blobs.stat = () => Promise.reject(new Error('store down'));
    await assert.rejects(new LocalRegistry(storage).getBlob('team/app', digest), /store down/);
  });
});
