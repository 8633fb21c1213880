/**
 * Partial blobs on the filesystem: `<data>/transfers/sha256/<hex>.part` holds the bytes at their
 * offsets, `<hex>.journal` the ranges held (partial-journal.ts: a line per recorded range, synced
 * once a second; trusted after a crash only up to what the part file holds), `<hex>.repair` the
 * scratch copy of a repair. A commit fdatasyncs the part and renames it into the blob store.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.ts';
import { requireDigest } from '../oci/digest.ts';
import type { ByteRange } from '../oci/range.ts';
import { RangeSet } from '../transfer/range-set.ts';
import { readIfExists, writeFileAtomic } from './atomic.ts';
import type { FsBlobStorage } from './blobs.ts';
import type { PartialBlob, PartialBlobInfo, PartialBlobStorage, PartialReader, PartialScratch } from './partial-blobs.ts';
import { usageOf } from './partial-blobs.ts';
import type { StorePaths } from './paths.ts';
import { Journal, loadJournal } from './partial-journal.ts';

/** An fs error with the path it concerns (a write on a descriptor names none). */
function withPath(e: unknown, path: string): unknown {
  const errno = e as NodeJS.ErrnoException;
  if (typeof errno?.code === 'string' && errno.path === undefined) errno.path = path;
  return e;
}

async function guarded<T>(path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw withPath(e, path);
  }
}

function toHalfOpen(held: readonly ByteRange[]): RangeSet {
  return new RangeSet(held.map((r) => ({ start: r.start, end: r.end + 1 })));
}

class FsScratch implements PartialScratch {
  constructor(private readonly fh: FileHandle, private readonly path: string) {}

  write(pos: number, bytes: Uint8Array): Promise<void> {
    return guarded(this.path, async () => {
      await this.fh.write(bytes, 0, bytes.length, pos);
    });
  }

  read(pos: number, into: Uint8Array): Promise<number> {
    return guarded(this.path, async () => (await this.fh.read(into, 0, into.length, pos)).bytesRead);
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
    await rm(this.path, { force: true });
  }
}

class FsPartialBlob implements PartialBlob {
  private committed = false;

  constructor(
    readonly digest: string,
    readonly size: number,
    readonly resumed: readonly ByteRange[],
    private readonly paths: StorePaths,
    private readonly blobs: FsBlobStorage,
    private readonly part: FileHandle,
    private journal: Journal,
  ) {}

  private get partPath(): string {
    return this.paths.partial(this.digest, 'part');
  }

  private get journalPath(): string {
    return this.paths.partial(this.digest, 'journal');
  }

  write(pos: number, bytes: Uint8Array): Promise<void> {
    return guarded(this.partPath, async () => {
      await this.part.write(bytes, 0, bytes.length, pos);
    });
  }

  read(pos: number, into: Uint8Array): Promise<number> {
    return guarded(this.partPath, async () => (await this.part.read(into, 0, into.length, pos)).bytesRead);
  }

  record(range: ByteRange): Promise<void> {
    return guarded(this.journalPath, () => this.journal.record(range.start, range.end + 1));
  }

  flush(): Promise<void> {
    return guarded(this.journalPath, () => this.journal.flush());
  }

  resetHeld(held: readonly ByteRange[]): Promise<void> {
    return guarded(this.journalPath, async () => {
      await this.journal.close();
      this.journal = await Journal.create(this.journalPath, this.paths.partial(this.digest, 'journal.tmp'), this.digest, this.size, toHalfOpen(held), this.part);
    });
  }

  scratch(): Promise<PartialScratch> {
    const path = this.paths.partial(this.digest, 'repair');
    return guarded(path, async () => new FsScratch(await open(path, 'w+'), path));
  }

  async commit(hashed: string): Promise<void> {
    if (hashed !== this.digest) {
      throw new RegistryError('DIGEST_INVALID', `content digest ${hashed} does not match ${this.digest}`, { expected: this.digest, actual: hashed });
    }
    await guarded(this.partPath, async () => {
      await this.part.datasync();
      await this.blobs.commitFile(this.partPath, this.digest);
    });
    this.committed = true;
  }

  async close(): Promise<void> {
    await this.journal.close().catch(() => {});
    await this.part.close().catch(() => {});
    if (this.committed) await rm(this.journalPath, { force: true });
  }

  async discard(): Promise<void> {
    await this.close();
    if (this.committed) return;
    await rm(this.partPath, { force: true });
    await rm(this.journalPath, { force: true });
  }
}

export class FsPartialBlobStorage implements PartialBlobStorage {
  constructor(private readonly paths: StorePaths, private readonly blobs: FsBlobStorage) {}

  async open(digest: string, size: number): Promise<PartialBlob> {
    requireDigest(digest);
    const partPath = this.paths.partial(digest, 'part');
    const journalPath = this.paths.partial(digest, 'journal');
    return guarded(partPath, async () => {
      await mkdir(this.paths.transfersDir, { recursive: true });
      const held = new RangeSet();
      let part: FileHandle | undefined;
      const done = await loadJournal(journalPath, digest, size);
      if (done) {
        try {
          part = await open(partPath, 'r+');
          // Never trust the journal past the end of the file.
          done.remove((await part.stat()).size, Infinity);
          for (const i of done.intervals) held.add(i.start, i.end);
        } catch {
          await part?.close().catch(() => {});
          part = undefined;
        }
      }
      part ??= await open(partPath, 'w+');
      const journal = await Journal.create(journalPath, this.paths.partial(digest, 'journal.tmp'), digest, size, held, part);
      const resumed = held.intervals.map((i) => ({ start: i.start, end: i.end - 1 }));
      return new FsPartialBlob(digest, size, resumed, this.paths, this.blobs, part, journal);
    });
  }

  async has(digest: string): Promise<boolean> {
    return stat(this.paths.partial(digest, 'part')).then(() => true, () => false);
  }

  async read(digest: string, range: ByteRange): Promise<Readable> {
    const fh = await this.openFile(digest);
    return createReadStream('', { fd: fh, start: range.start, end: range.end, highWaterMark: 256 * 1024 });
  }

  async openReader(digest: string): Promise<PartialReader> {
    const fh = await this.openFile(digest);
    // The open file stays readable once the part is renamed into the blob store (or removed).
    return {
      read: async (pos, into) => (await fh.read(into, 0, into.length, pos)).bytesRead,
      readv: async (views, pos) => (await fh.readv(views, pos)).bytesRead,
      close: () => fh.close(),
    };
  }

  /** The part file of digest, or the blob it was committed as. */
  private async openFile(digest: string): Promise<FileHandle> {
    try {
      return await open(this.paths.partial(digest, 'part'), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // Committed meanwhile: the part became the blob.
      return open(this.paths.blob(digest), 'r');
    }
  }

  async *list(): AsyncIterable<PartialBlobInfo> {
    const names = await readdir(this.paths.transfersDir).catch(() => [] as string[]);
    for (const name of names) {
      const f = this.paths.partialFileOf(name);
      if (f?.kind !== 'part') continue;
      const digest = f.digest;
      const st = await stat(this.paths.partial(digest, 'part')).catch(() => undefined);
      if (st) yield { digest, bytes: st.size, touchedAt: st.mtimeMs };
    }
  }

  async sweep(maxAgeMs: number, keep: (digest: string) => boolean = () => false, now = Date.now()): Promise<string[]> {
    const names = await readdir(this.paths.transfersDir).catch(() => [] as string[]);
    const removed = new Set<string>();
    for (const name of names) {
      const f = this.paths.partialFileOf(name);
      if (!f) continue;
      const digest = f.digest;
      if (keep(digest)) continue;
      const path = this.paths.partial(digest, f.kind);
      const st = await stat(path).catch(() => undefined);
      if (!st || now - st.mtimeMs <= maxAgeMs) continue;
      await rm(path, { force: true });
      removed.add(digest);
    }
    return [...removed];
  }

  usage(): Promise<{ bytes: number; count: number }> {
    return usageOf(this.list());
  }

  readState(key: string): Promise<string | undefined> {
    return readIfExists(this.paths.transferState(key));
  }

  async writeState(key: string, text: string): Promise<void> {
    await mkdir(this.paths.transfersDir, { recursive: true });
    await writeFileAtomic(this.paths.tmpDir, this.paths.transferState(key), text);
  }
}
