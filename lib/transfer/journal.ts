/**
 * The journal beside a .part file: which byte ranges are on disk. Line one names the blob
 * ("ferry-journal 1 <digest> <size>"), then one "start end" line (half-open) per range written.
 * The .part is fdatasync'd before a line is appended and the journal fsync'd after, so the
 * journal never claims bytes that are not on disk. A torn last line (kill -9) is ignored.
 */
import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { RangeSet } from './range-set.ts';

const MAGIC = 'ferry-journal 1';

function headerLine(digest: string, size: number): string {
  return `${MAGIC} ${digest} ${size}\n`;
}

/** The ranges a journal records, or undefined when it is missing or for another blob. */
export async function loadJournal(path: string, digest: string, size: number): Promise<RangeSet | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  lines.pop(); // whatever follows the last newline is torn or empty
  if (`${lines.shift()}\n` !== headerLine(digest, size)) return undefined;
  const done = new RangeSet();
  for (const line of lines) {
    const m = /^(\d+) (\d+)$/.exec(line);
    if (!m) continue;
    done.add(Number(m[1]), Math.min(Number(m[2]), size));
  }
  return done;
}

export class Journal {
  private tail: Promise<void> = Promise.resolve();
  private pending: string[] = [];

  private constructor(private readonly fh: FileHandle, private readonly part: FileHandle) {}

  /** Writes a fresh journal holding `done` (atomically: temp, fsync, rename) and opens it for appending. */
  static async create(path: string, digest: string, size: number, done: RangeSet, part: FileHandle): Promise<Journal> {
    const tmp = `${path}.tmp`;
    const body = headerLine(digest, size) + done.intervals.map((i) => `${i.start} ${i.end}\n`).join('');
    const t = await open(tmp, 'w');
    try {
      await t.writeFile(body);
      await t.sync();
    } finally {
      await t.close();
    }
    await rename(tmp, path);
    return new Journal(await open(path, 'a'), part);
  }

  /** Records [start, end) as on disk. Lines arriving during a flush share the next one. */
  record(start: number, end: number): Promise<void> {
    if (end <= start) return this.tail;
    this.pending.push(`${start} ${end}\n`);
    this.tail = this.tail.then(() => this.flushPending());
    return this.tail;
  }

  /** Resolves once every recorded range is durable. */
  flush(): Promise<void> {
    return this.tail;
  }

  async close(): Promise<void> {
    await this.tail.catch(() => {});
    await this.fh.close();
  }

  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    const lines = this.pending.join('');
    this.pending = [];
    await this.part.datasync();
    await this.fh.write(lines);
    await this.fh.sync();
  }
}
