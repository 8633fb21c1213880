/** Removes unfinished transfers nobody resumed: parts and journals older than maxAgeMs. */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

const TRANSFER_FILE = /^([a-f0-9]+)\.(part|journal|journal\.tmp|repair)$/;

/**
 * Returns the names removed. `keep(hex)` spares transfers in flight (their files are touched
 * continually anyway, so this only matters for one that has stalled for that long).
 */
export async function cleanOrphanedParts(dir: string, maxAgeMs: number, keep: (hex: string) => boolean = () => false, now = Date.now()): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TRANSFER_FILE.exec(name);
    if (!m || keep(m[1] as string)) continue;
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st || now - st.mtimeMs <= maxAgeMs) continue;
    await rm(path, { force: true });
    removed.push(name);
  }
  return removed;
}
