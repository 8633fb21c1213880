/**
 * One ferry process per data dir: a second `ferry mirror` on a directory a running one holds
 * stops at once with a message naming the holder; after a kill -9 the next start takes over.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE } from '../../lib/storage/data-dir-lock.ts';
import { runFerry } from './ferry-cli.ts';
import { startFerryProcess, type FerryProcess } from './transfer-fixture.ts';

describe('ferry mirror holds its data dir alone', function () {
  this.timeout(60_000);
  let work: string;
  let first: FerryProcess | undefined;
  let second: FerryProcess | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ferry-lock-e2e-'));
  });
  after(async () => {
    await first?.stop();
    await second?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('refuses a second mirror on the same data dir, naming the running one, and starts after a kill -9 of it', async () => {
    const dataDir = join(work, 'data');
    first = await startFerryProcess({}, dataDir, 'ferry-lock-first');
    const config = join(work, 'second.json');
    await writeFile(config, JSON.stringify({ listen: '127.0.0.1:0', dataDir, log: { level: 'warn' } }));
    const refused = await runFerry(['mirror', '--config', config]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`ferry: data dir ${dataDir} is in use by ferry mirror \\(pid ${first.pid}, since `));
    assert.doesNotMatch(refused.stderr, /\n\s+at /, 'a message, not a stack trace');

    await first.kill9();
    assert.match(await readFile(join(dataDir, LOCK_FILE), 'utf8'), new RegExp(`"pid":${first.pid}`), 'kill -9 leaves the lock behind');
    second = await startFerryProcess({}, dataDir, 'ferry-lock-second');
    assert.match(await readFile(join(dataDir, LOCK_FILE), 'utf8'), new RegExp(`"pid":${second.pid}`));
    await second.stop();
    await assert.rejects(readFile(join(dataDir, LOCK_FILE)), { code: 'ENOENT' }, 'a clean stop removes the lock');
    second = undefined;
  });
});
