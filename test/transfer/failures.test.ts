import assert from 'node:assert/strict';
import { mkdir, readFile, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TransferDeadlineError, LocalIoError } from '../../lib/transfer/errors.ts';
import { MiB, TEST_CONFIG, rig, type Rig } from './harness.ts';

describe('transfer: failures that retrying cannot fix, and the deadline of a fill', function () {
  this.timeout(20_000);
  let r: Rig | undefined;
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });

  it('fails at once on ENOSPC writing the part file (never retried), naming the errno and the path', async () => {
    r = await rig(2 * MiB);
    const hex = r.digest.slice('sha256:'.length);
    await mkdir(r.dir, { recursive: true });
    // A real ENOSPC: every write to /dev/full fails with it.
    await symlink('/dev/full', join(r.dir, `${hex}.part`));
    const started = performance.now();
    const t = r.start();
    const err = await t.done.then(() => undefined, (e: unknown) => e);
    const ms = performance.now() - started;
    assert.ok(err instanceof LocalIoError, `failed with ${String(err)}`);
    assert.equal(err.errno, 'ENOSPC');
    assert.match(err.message, /ENOSPC/);
    assert.ok(err.message.includes(join(r.dir, `${hex}.part`)), err.message);
    assert.ok(ms < 1000, `took ${Math.round(ms)} ms`);
    assert.equal(t.state, 'failed');
    assert.ok(r.server.stats.requests <= TEST_CONFIG.maxConnections!, `${r.server.stats.requests} requests: the chunks were tried again`);
  });

  it('fails a fill still running at its deadline, keeps what it fetched, and a new fill resumes and completes', async () => {
    // 8 connections of 64 KiB/s: 4 MiB would take 8 s.
    r = await rig(4 * MiB, { faults: { rateBytesPerSec: 64 * 1024 } });
    const config = { ...TEST_CONFIG, deadlineSeconds: 1.5 };
    const first = r.start({ config });
    const started = performance.now();
    const err = await first.done.then(() => undefined, (e: unknown) => e);
    const ms = performance.now() - started;
    assert.ok(err instanceof TransferDeadlineError, `failed with ${String(err)}`);
    assert.match(err.message, /deadlineSeconds/);
    assert.ok(ms >= 1400 && ms < 4000, `failed after ${Math.round(ms)} ms`);
    assert.equal(first.state, 'failed');
    const kept = first.snapshot().bytesDone;
    assert.ok((await stat(r.store.paths.partial(r.digest, 'journal'))).size > 0, 'the journal stays for a resume');
    // Asked again on a clean link: it resumes and completes.
    r.proxy.clearFaults();
    const second = r.start({ config });
    const result = await second.done;
    assert.ok(result.resumedBytes > 0 || kept === 0, 'resumed what the first fill fetched');
    assert.ok((await readFile(r.blobPath)).equals(r.data));
  });
});
