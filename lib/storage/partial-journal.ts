/**
 * The journal beside a .part file: which byte ranges are on disk. Line one names the blob
 * ("ferry-journal 1 <digest> <size>"), line two the boot it was written in ("boot <id>"), then
 * one "start end" line (half-open) per range written, and now and then "sync".
 *
 * A range line is appended as soon as its bytes are written: a killed process loses nothing the
 * page cache holds, so a kill -9 costs only the bytes in flight. "sync" is appended once the .part
 * was fdatasync'd and is followed by an fsync of the journal: the ranges above it survive a power
 * loss too. On load, a journal of this boot is trusted whole; one of an earlier boot (the machine
 * went down) only up to its last "sync", so it never claims bytes that are not on disk. A torn
 * last line is ignored. A journal without a boot line (older ferry) synced every line.
 */
import { readFileSync } from 'node:fs';
import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { RangeSet } from '../transfer/range-set.ts';

const MAGIC = 'ferry-journal 1';
/** How often the ranges are made durable against a power loss. */
const SYNC_INTERVAL_MS = 1000;

function readBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || 'unknown';
  } catch {
    // Without a boot id every restart counts as a new boot: only synced ranges are trusted.
    return `unknown-${process.pid}-${Date.now()}`;
  }
}

const BOOT_ID = readBootId();

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
  const boot = /^boot (\S+)$/.exec(lines[0] ?? '');
  if (boot) lines.shift();
  const trustAll = !boot || boot[1] === BOOT_ID;
  const done = new RangeSet();
  let unsynced: Array<[number, number]> = [];
  for (const line of lines) {
    if (line === 'sync') {
      for (const [a, b] of unsynced) done.add(a, b);
      unsynced = [];
      continue;
    }
    const m = /^(\d+) (\d+)$/.exec(line);
    if (!m) continue;
    const range: [number, number] = [Number(m[1]), Math.min(Number(m[2]), size)];
    if (trustAll) done.add(...range);
    else unsynced.push(range);
  }
  return done;
}

export class Journal {
  private tail: Promise<void> = Promise.resolve();
  private pending: string[] = [];
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly fh: FileHandle, private readonly part: FileHandle) {}

  /** Writes a fresh journal holding `done` (atomically: `tmp`, fsync, rename) and opens it for appending. */
  static async create(path: string, tmp: string, digest: string, size: number, done: RangeSet, part: FileHandle): Promise<Journal> {
    const body = `${headerLine(digest, size)}boot ${BOOT_ID}\n${done.intervals.map((i) => `${i.start} ${i.end}\n`).join('')}sync\n`;
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

  /** Records [start, end) as written (the bytes are in the page cache at least). Lines arriving during a write share the next one. */
  record(start: number, end: number): Promise<void> {
    if (end <= start) return this.tail;
    this.pending.push(`${start} ${end}\n`);
    this.tail = this.tail.then(() => this.writePending());
    if (!this.syncTimer) {
      this.syncTimer = setTimeout(() => {
        this.syncTimer = undefined;
        this.flush().catch(() => {});
      }, SYNC_INTERVAL_MS);
      this.syncTimer.unref();
    }
    return this.tail;
  }

  /** Resolves once every recorded range is durable, power loss included. */
  flush(): Promise<void> {
    this.tail = this.tail.then(() => this.sync());
    return this.tail;
  }

  async close(): Promise<void> {
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    await this.flush().catch(() => {});
    await this.fh.close();
  }

  private async writePending(): Promise<void> {
    if (this.pending.length === 0) return;
    const lines = this.pending.join('');
    this.pending = [];
    await this.fh.write(lines);
    this.dirty = true;
  }

  private async sync(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    await this.part.datasync();
    await this.fh.write('sync\n');
    await this.fh.sync();
  }
}
