/**
 * One serving process per data dir. The mirror and the relay keep per-process state about the
 * store (single flight per digest, `.part` files and their journals being written): two of them
 * on one directory would write the same partial files. `ferry.lock` in the data dir names the
 * holder (pid and the kernel's start time of that pid, so a pid reused after a crash or in a
 * restarted container is not mistaken for a live holder). A lock left by a killed process is
 * taken over. Tools that only add content atomically (import, gc, export) take no lock.
 */
import { randomUUID } from 'node:crypto';
import { OperatorError } from '../operator-error.ts';
import { checkWritable, notWritable } from './writable.ts';
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StorePaths } from './paths.ts';

export const LOCK_FILE = StorePaths.LOCK;

interface Holder {
  pid: number;
  /** Field 22 of /proc/PID/stat (start time in clock ticks since boot), when /proc exists. */
  start?: string;
  role: string;
  since: string;
  token: string;
}

export class DataDirInUseError extends OperatorError {
  constructor(readonly dataDir: string, readonly holder: Holder) {
    super(`data dir ${dataDir} is in use by ferry ${holder.role} (pid ${holder.pid}, since ${holder.since}): stop that process, or give this one another dataDir (${join(dataDir, LOCK_FILE)})`);
    this.name = 'DataDirInUseError';
  }
}

export interface DataDirLock {
  readonly file: string;
  /** Removes the lock file if it is still ours. */
  release(): Promise<void>;
}

/** Directories locked by this process (a second mirror in the same process is refused too). */
const heldHere = new Set<string>();

/** Start time (field 22 of /proc/PID/stat) of a running process; undefined when gone or a zombie. */
async function startTicks(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // A killed process not yet reaped by its parent is a zombie ('Z') or dead ('X'): it holds nothing.
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

const hasProc = startTicks(process.pid).then((t) => t !== undefined);

async function alive(holder: Holder, dir: string): Promise<boolean> {
  // A torn or foreign file reads as pid -1 (and kill(-1, 0) would ask about every process).
  if (!Number.isSafeInteger(holder.pid) || holder.pid <= 0) return false;
  if (holder.pid === process.pid) return heldHere.has(dir);
  if (await hasProc) {
    const start = await startTicks(holder.pid);
    return start !== undefined && (holder.start === undefined || start === holder.start);
  }
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(file: string): Promise<Holder | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    if (typeof h.pid === 'number' && typeof h.token === 'string') return h as Holder;
  } catch {
    // A torn or foreign file: treated as stale below.
  }
  return { pid: -1, role: 'unknown', since: 'unknown', token: '' };
}

/**
 * Whether the holder lives on for `waitMs`: a holder just killed (a restart right after kill -9,
 * a supervisor restarting a crashed service) may take a moment to be gone.
 */
async function stillAlive(holder: Holder, dir: string, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    if (!(await alive(holder, dir))) return false;
    if (holder.pid === process.pid || Date.now() >= deadline) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Takes the data dir for `role` or throws DataDirInUseError naming the holder, once it has
 * lived on for `waitMs` (default 3000).
 */
export async function lockDataDir(dataDir: string, role: string, opts: { waitMs?: number } = {}): Promise<DataDirLock> {
  const dir = resolve(dataDir);
  const file = new StorePaths(dir).lockFile;
  const me: Holder = { pid: process.pid, start: await startTicks(process.pid), role, since: new Date().toISOString(), token: randomUUID() };
  const body = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(file, 'wx');
      await fh.writeFile(body);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 3) throw err;
    }
    const holder = await readHolder(file);
    if (holder === undefined) continue; // released meanwhile: try again
    if (await stillAlive(holder, dir, opts.waitMs ?? 3000)) throw new DataDirInUseError(dir, holder);
    // Stale: replace it in one rename, then make sure no other starter replaced it after us.
    const tmp = `${file}.${me.token}`;
    await writeFile(tmp, body);
    await rename(tmp, file);
    if ((await readHolder(file))?.token === me.token) break;
  }
  heldHere.add(dir);
  let released = false;
  return {
    file,
    async release() {
      if (released) return;
      released = true;
      heldHere.delete(dir);
      if ((await readHolder(file))?.token === me.token) await unlink(file).catch(() => {});
    },
  };
}

/**
 * Creates the data dir, locks it for `role` and runs `start`; the lock is released if start
 * throws, else the started service must release it when it stops.
 */
export async function startLocked<T>(dataDir: string, role: string, start: (lock: DataDirLock) => Promise<T>): Promise<T> {
  let lock: DataDirLock;
  try {
    await mkdir(dataDir, { recursive: true });
    lock = await lockDataDir(dataDir, role);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') throw await notWritable(e.path ?? dataDir, dataDir, err);
    throw err;
  }
  try {
    await checkWritable(dataDir);
    return await start(lock);
  } catch (err) {
    await lock.release();
    throw err;
  }
}
