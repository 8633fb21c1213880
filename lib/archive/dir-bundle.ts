/**
 * A bundle directory: an OCI image layout (what `ferry export --format oci-dir` writes) or an
 * extracted docker save. Only the files the images reference are read, on demand; a blob the
 * store already holds at the right size is not read again (so a re-run after an interruption
 * resumes). Paths never leave the directory.
 */
import { createReadStream } from 'node:fs';
import { lstat, readFile, realpath } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { RegistryError } from '../oci/errors.ts';
import { isNotFound } from '../storage/atomic.ts';
import type { Storage } from '../storage/storage.ts';
import { BundleError, digestFromPath, MAX_METADATA_BYTES, METADATA_FILES, normalizeEntryPath, type Bundle, type StoredFile } from './bundle.ts';

export class DirBundle implements Bundle {
  private readonly metadata = new Map<string, Buffer>();
  private readonly cache = new Map<string, StoredFile>();

  private constructor(
    readonly label: string,
    private readonly root: string,
    private readonly store: Storage,
    private readonly onBytes?: (n: number) => void,
  ) {}

  static async open(dir: string, store: Storage, onBytes?: (n: number) => void): Promise<DirBundle> {
    const root = await realpath(dir);
    const bundle = new DirBundle(dir, root, store, onBytes);
    for (const name of METADATA_FILES) {
      const p = join(root, name);
      const s = await lstat(p).catch(() => undefined);
      if (!s?.isFile()) continue;
      if (s.size > MAX_METADATA_BYTES) throw new BundleError(dir, `${name} is ${s.size} bytes, more than a metadata file can be`);
      bundle.metadata.set(name, await readFile(p));
    }
    return bundle;
  }

  meta(path: string): Buffer | undefined {
    return this.metadata.get(path);
  }

  async blob(path: string): Promise<StoredFile | undefined> {
    const rel = normalizeEntryPath(path);
    if (rel === undefined) return undefined;
    const known = this.cache.get(rel);
    if (known) return known;
    let real: string;
    try {
      real = await realpath(join(this.root, rel));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    const inside = relative(this.root, real);
    if (inside.startsWith('..') || inside.startsWith(sep)) throw new BundleError(this.label, `${path} points outside the directory`);
    const s = await lstat(real);
    if (!s.isFile()) return undefined;
    const expected = digestFromPath(rel);
    if (expected !== undefined) {
      const have = await this.store.blobs.stat(expected);
      if (have && have.size === s.size) {
        this.onBytes?.(s.size);
        return this.remember(rel, { digest: expected, size: s.size });
      }
    }
    try {
      const stored = await this.store.blobs.ingest(counted(real, this.onBytes), { ...(expected ? { digest: expected } : {}), size: s.size });
      return this.remember(rel, stored);
    } catch (e) {
      if (e instanceof RegistryError) throw new BundleError(this.label, `${rel}: ${e.message}`);
      throw e;
    }
  }

  private remember(rel: string, f: StoredFile): StoredFile {
    this.cache.set(rel, f);
    return f;
  }
}

async function* counted(path: string, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    onBytes?.((chunk as Buffer).length);
    yield chunk as Buffer;
  }
}
