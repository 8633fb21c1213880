/** The fs backend's PartialBlobStorage (placeholder with the seam; engine fills it in). */
import { readdir, stat } from 'node:fs/promises';
import type { PartialBlobStorage } from './partial-blobs.ts';
import type { StorePaths } from './paths.ts';

export class FsPartialBlobStorage implements PartialBlobStorage {
  constructor(private readonly paths: StorePaths) {}

  async usage(): Promise<{ bytes: number; count: number }> {
    let bytes = 0;
    let count = 0;
    for (const name of await readdir(this.paths.transfersDir).catch(() => [] as string[])) {
      if (!this.paths.isPartFile(name)) continue;
      // A part may finish (renamed into blobs/) between readdir and stat.
      const s = await stat(this.paths.transferFile(name)).catch(() => undefined);
      if (s?.isFile()) {
        bytes += s.size;
        count++;
      }
    }
    return { bytes, count };
  }
}
