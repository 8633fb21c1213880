/**
 * Crash-safe file writes: temp file in the store's tmp dir (same filesystem), fsync, rename,
 * fsync the directory. A reader sees the old file or the new one, never a part.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';

/** Makes a file's content, or a directory's entries, durable (fsync needs no write access). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function tempPath(tmpDir: string): string {
  return join(tmpDir, `${Date.now()}-${randomUUID()}`);
}

/** Renames a complete, fsync'd file into place and makes the rename durable. */
export async function commitFile(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await rename(from, to);
  await fsyncPath(dirname(to));
}

export async function writeFileAtomic(tmpDir: string, to: string, data: Buffer | string): Promise<void> {
  const tmp = tempPath(tmpDir);
  const fh = await open(tmp, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await commitFile(tmp, to);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export function isNotFound(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
