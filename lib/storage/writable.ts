/**
 * At start: can this process write every directory of its data dir? A data dir partly written
 * by root (a first run with sudo) otherwise starts fine and fails pushes later with EACCES.
 */
import { constants } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OperatorError, ownerOf } from '../operator-error.ts';

/** Throws OperatorError naming the first directory (breadth first) this process cannot write. */
export async function checkWritable(dataDir: string): Promise<void> {
  const queue = [dataDir];
  for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) {
    try {
      await access(dir, constants.W_OK | constants.X_OK);
    } catch {
      throw await notWritable(dir, dataDir);
    }
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) queue.push(join(dir, entry.name));
    }
  }
}

/** The one line for a path of the data dir this process cannot write. */
export async function notWritable(path: string, dataDir: string, cause?: unknown): Promise<OperatorError> {
  // A file we could not create: its directory's owner is the one that matters.
  const uid = await stat(path).then((s) => s.uid, () => stat(dirname(path)).then((s) => s.uid, () => undefined));
  const me = process.getuid?.() ?? -1;
  const owner = uid === undefined ? '' : ` (owned by ${ownerOf(uid)}; ferry runs as ${ownerOf(me)})`;
  return new OperatorError(`cannot write ${path}${owner}: give the data dir to the service user, e.g. \`chown -R ferry: ${dataDir}\`, or run ferry as its owner`, 'runtime', { cause });
}
