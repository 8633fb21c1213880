/**
 * Tests load as ES modules (.mocharc.json: no-experimental-require-module). With Node's require(esm)
 * mocha require()s a test file, tsx compiles it and all it imports statically to CommonJS, and a
 * module the code imports dynamically (open-storage.ts's S3 backend) brings a second copy of every
 * module under it: `instanceof RegistryError` failed across the two, and an in-process service on
 * S3 answered its registry errors as 500 INTERNAL (test/cluster/shared-state.test.ts).
 */
import assert from 'node:assert/strict';
import { RegistryError, isRegistryError } from '../../lib/oci/errors.ts';

describe('one module graph under mocha', () => {
  it('a module imported dynamically is the copy imported statically', async () => {
    const dynamic = await import('../../lib/oci/errors.ts');
    assert.equal(dynamic.RegistryError, RegistryError);
    assert.ok(isRegistryError(new dynamic.RegistryError('BLOB_UNKNOWN')));
  });
});
