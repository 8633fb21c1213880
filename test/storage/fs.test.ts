import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../lib/storage/store.ts';
import { storageSuite } from './suite.ts';

storageSuite('fs', async (opts = {}) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-storage-fs-'));
  const storage = await openStore(dir, opts.uploadLimits ? { uploadLimits: opts.uploadLimits } : {});
  return {
    storage,
    cleanup: () => rm(dir, { recursive: true, force: true }),
    ageBlob: async (digest, ms) => {
      const at = new Date(Date.now() - ms);
      await utimes(storage.paths.blob(digest), at, at);
    },
  };
});

describe('fs storage: crash safety', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-storage-crash-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves no visible blob when the process is killed -9 mid-ingest; sweep removes the temp file', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./ingest-child.ts', import.meta.url)), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    assert.equal(line.toString().trim(), 'mid');
    child.kill('SIGKILL');
    await exited;
    const store = await openStore(dir);
    const listed = [];
    for await (const b of store.blobs.list()) listed.push(b);
    assert.deepEqual(listed, []);
    assert.equal(await store.blobs.has(`sha256:${'0'.repeat(64)}`), false);
    assert.equal((await readdir(store.paths.tmpDir)).length, 1, 'the temp file of the killed ingest is left (younger than the hour open sweeps)');
    assert.equal(await store.blobs.sweep(-1), 1);
    assert.deepEqual(await readdir(store.paths.tmpDir), []);
  });

  it('removes its temp file when an ingest fails (digest mismatch or a failing source)', async () => {
    const store = await openStore(dir);
    await assert.rejects(store.blobs.ingest((async function* () {
      yield Buffer.alloc(1024 * 1024);
      throw new Error('cut');
    })()), /cut/);
    await assert.rejects(store.blobs.ingest((async function* () {
      yield Buffer.alloc(1024);
    })(), { digest: `sha256:${'1'.repeat(64)}` }), { situation: 'DIGEST_INVALID' });
    assert.deepEqual(await readdir(store.paths.tmpDir), []);
    assert.deepEqual(await readdir(store.paths.blobsDir), []);
  });
});

describe('fs storage: tags', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-storage-tags-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('readTag gives the digest and the time checked of one and the same write while the tag is set again and again', async () => {
    const store = await openStore(dir);
    const r = store.repositories;
    const digest = (n: number): string => `sha256:${String(n).repeat(64)}`;
    // Each write of the tag is told by its mtime (whole seconds: exact): digest n at n thousand seconds.
    const checkedAt = (n: number): number => n * 1_000_000;
    const set = async (n: number): Promise<void> => {
      const tmp = join(store.paths.tmpDir, `tag-${n}`);
      await writeFile(tmp, digest(n));
      await utimes(tmp, checkedAt(n) / 1000, checkedAt(n) / 1000);
      await rename(tmp, store.paths.tag('app', 'latest'));
    };
    await r.setTag('app', 'latest', digest(1));
    await set(1);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 400; i++) await set(1 + (i % 2));
      writing = false;
    })();
    const wrong: string[] = [];
    let reads = 0;
    while (writing) {
      const seen = await r.readTag('app', 'latest');
      reads++;
      if (seen === undefined || checkedAt(Number(seen.digest.at(-1))) !== seen.checkedAt) wrong.push(JSON.stringify(seen));
    }
    await writer;
    assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} of ${reads} reads mixed two writes`);
  });
});
