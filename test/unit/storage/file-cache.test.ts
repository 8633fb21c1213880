import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StatValidatedCache, fileExists } from '../../../lib/storage/file-cache.ts';

describe('StatValidatedCache', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-file-cache-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('reads a file, and answers undefined for one that does not exist', async () => {
    const cache = new StatValidatedCache();
    await writeFile(join(dir, 'a'), 'sha256:aaaa');
    assert.equal(await cache.read(join(dir, 'a')), 'sha256:aaaa');
    assert.equal(await cache.read(join(dir, 'nope')), undefined);
  });

  it('answers from its cache while the file’s stat is unchanged', async () => {
    const cache = new StatValidatedCache();
    const p = join(dir, 'a');
    await writeFile(p, 'sha256:aaaa');
    // Whole seconds, so that setting the same mtime again is exact.
    await utimes(p, 1_700_000_000, 1_700_000_000);
    assert.equal(await cache.read(p), 'sha256:aaaa');
    // An in-place rewrite that keeps inode, size and mtime: the store never does this, and the
    // cache cannot tell, which shows the second read did not touch the content.
    await writeFile(p, 'sha256:bbbb');
    await utimes(p, 1_700_000_000, 1_700_000_000);
    assert.equal((await stat(p)).mtimeMs, 1_700_000_000_000);
    assert.equal(await cache.read(p), 'sha256:aaaa');
  });

  it('sees a file replaced by rename, even with content of the same length', async () => {
    const cache = new StatValidatedCache();
    const p = join(dir, 'tag');
    await writeFile(p, 'sha256:aaaa');
    assert.equal(await cache.read(p), 'sha256:aaaa');
    await writeFile(join(dir, 'tmp'), 'sha256:bbbb');
    await rename(join(dir, 'tmp'), p);
    assert.equal(await cache.read(p), 'sha256:bbbb');
  });

  it('sees a rewrite in place once the mtime moves', async () => {
    const cache = new StatValidatedCache();
    const p = join(dir, 'a');
    await writeFile(p, 'one');
    assert.equal(await cache.read(p), 'one');
    await writeFile(p, 'two');
    await utimes(p, new Date(), new Date(Date.now() + 5000));
    assert.equal(await cache.read(p), 'two');
  });

  it('forgets a file once it is deleted', async () => {
    const cache = new StatValidatedCache();
    const p = join(dir, 'a');
    await writeFile(p, 'x');
    assert.equal(await cache.read(p), 'x');
    await unlink(p);
    assert.equal(await cache.read(p), undefined);
  });
});

describe('fileExists', () => {
  it('tells a present file from a missing one (and from a missing parent folder)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-file-exists-'));
    try {
      await writeFile(join(dir, 'a'), '');
      assert.equal(await fileExists(join(dir, 'a')), true);
      assert.equal(await fileExists(join(dir, 'b')), false);
      assert.equal(await fileExists(join(dir, 'a', 'b')), false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
