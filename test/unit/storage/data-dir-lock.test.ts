import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataDirInUseError, LOCK_FILE, lockDataDir, startLocked } from '../../../lib/storage/data-dir-lock.ts';

/** /proc/PID/stat field 22, as the lock records it. */
async function startTicks(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

describe('data dir lock', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-lock-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is held by one holder at a time, in this process too, and can be taken again once released', async () => {
    const lock = await lockDataDir(dir, 'mirror');
    const holder = JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as { pid: number; role: string };
    assert.deepEqual([holder.pid, holder.role], [process.pid, 'mirror']);
    await assert.rejects(lockDataDir(dir, 'relay'), (e: unknown) => e instanceof DataDirInUseError && e.message.includes(`pid ${process.pid}`) && e.message.includes(dir));
    await lock.release();
    await assert.rejects(readFile(join(dir, LOCK_FILE)), { code: 'ENOENT' });
    const again = await lockDataDir(dir, 'mirror');
    await again.release();
  });

  it('refuses while another live process holds it, naming that process', async () => {
    const child = spawn('sleep', ['30']);
    try {
      await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: child.pid, start: await startTicks(child.pid!), role: 'mirror', since: '2026-11-25T00:00:00.000Z', token: 'other' }));
      const t0 = performance.now();
      await assert.rejects(lockDataDir(dir, 'mirror', { waitMs: 300 }), (e: unknown) => e instanceof DataDirInUseError && /ferry mirror \(pid \d+, since 2026-11-25/.test(e.message));
      assert.ok(performance.now() - t0 >= 300, 'it gave the holder its time to go away');
      // Its lock is left alone.
      assert.match(await readFile(join(dir, LOCK_FILE), 'utf8'), /"token":"other"/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('takes over a lock whose process died (kill -9) or whose pid now belongs to another process', async () => {
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.once('exit', resolve));
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: dead.pid, role: 'mirror', since: 'then', token: 'dead' }));
    const a = await lockDataDir(dir, 'mirror');
    await a.release();

    const reused = spawn('sleep', ['30']);
    try {
      await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: reused.pid, start: '1', role: 'mirror', since: 'then', token: 'reused' }));
      const b = await lockDataDir(dir, 'mirror');
      assert.match(await readFile(join(dir, LOCK_FILE), 'utf8'), new RegExp(`"pid":${process.pid}`));
      await b.release();
    } finally {
      reused.kill('SIGKILL');
    }
  });

  it('waits for a holder that is going away (a restart right after a kill), and for a zombie not at all', async () => {
    const dying = spawn('sleep', ['0.3']);
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: dying.pid, start: await startTicks(dying.pid!), role: 'mirror', since: 'then', token: 'dying' }));
    const a = await lockDataDir(dir, 'mirror', { waitMs: 5000 });
    await a.release();

    // sh execs a sleep that never reaps its own child: that child, once exited, stays a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0.05 & exec sleep 30']);
    try {
      let zombie = 0;
      for (let i = 0; i < 100 && !zombie; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const kids = (await readFile(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').catch(() => '')).trim();
        const pid = Number(kids.split(/\s+/)[0]);
        if (pid > 0 && / Z /.test(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''))) zombie = pid;
      }
      assert.ok(zombie > 0, 'a zombie to lock with');
      await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: zombie, start: await startTicks(zombie), role: 'mirror', since: 'then', token: 'zombie' }));
      const t0 = performance.now();
      const b = await lockDataDir(dir, 'mirror', { waitMs: 5000 });
      assert.ok(performance.now() - t0 < 1000, 'a zombie holds nothing: no wait');
      await b.release();
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('takes over a torn or foreign lock file', async () => {
    await writeFile(join(dir, LOCK_FILE), '{"pid": 12');
    const lock = await lockDataDir(dir, 'mirror');
    await lock.release();
  });

  it('release leaves a lock that is no longer its own', async () => {
    const lock = await lockDataDir(dir, 'mirror');
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, role: 'mirror', since: 'now', token: 'someone else' }));
    await lock.release();
    assert.match(await readFile(join(dir, LOCK_FILE), 'utf8'), /someone else/);
  });

  it('startLocked creates the dir and releases the lock when the start fails', async () => {
    const sub = join(dir, 'new', 'data');
    await assert.rejects(startLocked(sub, 'mirror', () => Promise.reject(new Error('port taken'))), /port taken/);
    const lock = await lockDataDir(sub, 'mirror');
    await lock.release();
  });
});
