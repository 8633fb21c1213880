/**
 * Bytes and count of blobs in the store. Walking a large store costs seconds, so the figure is
 * computed on demand, at most once per `ttlMs`, and concurrent askers share one walk.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface StoreSizeFigures {
  bytes: number;
  blobs: number;
  /** Bytes of unfinished pull-through transfers (.part files). */
  partialBytes: number;
  computedAt: number;
}

export class StoreSize {
  private cached: StoreSizeFigures | undefined;
  private walking: Promise<StoreSizeFigures> | undefined;

  constructor(private readonly root: string, private readonly ttlMs = 30_000) {}

  /** The last figures, recomputed when older than the TTL. */
  get(now = Date.now()): Promise<StoreSizeFigures> {
    if (this.cached && now - this.cached.computedAt < this.ttlMs) return Promise.resolve(this.cached);
    this.walking ??= this.walk().then((f) => {
      this.cached = f;
      return f;
    }).finally(() => {
      this.walking = undefined;
    });
    return this.walking;
  }

  /** The cached figures without waiting (undefined before the first walk). */
  peek(): StoreSizeFigures | undefined {
    return this.cached;
  }

  private async walk(): Promise<StoreSizeFigures> {
    const blobs = await sumFiles(join(this.root, 'blobs'), () => true);
    const parts = await sumFiles(join(this.root, 'transfers'), (name) => name.endsWith('.part'));
    return { bytes: blobs.bytes, blobs: blobs.files, partialBytes: parts.bytes, computedAt: Date.now() };
  }
}

async function sumFiles(dir: string, keep: (name: string) => boolean): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const visit = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await visit(p);
      else if (e.isFile() && keep(e.name)) {
        // A file may vanish between readdir and stat (eviction, a finished transfer).
        const s = await stat(p).catch(() => undefined);
        if (s) {
          bytes += s.size;
          files++;
        }
      }
    }
  };
  await visit(dir);
  return { bytes, files };
}
