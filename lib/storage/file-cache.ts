/**
 * Small metadata files (tags, manifest links) read through a cache that one stat validates.
 * readFile costs four thread-pool round trips (open, fstat, read, close), a stat one; the store
 * replaces these files by rename, so a changed file always shows a new inode or mtime, and
 * writes by other processes (ferry import, gc) are seen at once: nothing to invalidate by hand.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { isNotFound, readIfExists } from './atomic.ts';

interface Entry {
  ino: number;
  mtimeMs: number;
  size: number;
  text: string;
}

export class StatValidatedCache {
  private readonly entries: LRUCache<string, Entry>;

  constructor(maxEntries = 20_000) {
    this.entries = new LRUCache({ max: maxEntries });
  }

  /** The file's text (utf8), or undefined when it does not exist. */
  async read(path: string): Promise<string | undefined> {
    let s;
    try {
      s = await stat(path);
    } catch (e) {
      if (isNotFound(e)) {
        this.entries.delete(path);
        return undefined;
      }
      throw e;
    }
    const hit = this.cached(path, s);
    if (hit !== undefined) return hit;
    // Replaced between the stat and this read? Then the next stat differs and reads again.
    const text = await readIfExists(path);
    if (text === undefined) this.entries.delete(path);
    else this.entries.set(path, { ino: s.ino, mtimeMs: s.mtimeMs, size: s.size, text });
    return text;
  }

  /**
   * The file's text and mtime, both of one and the same file however often it is replaced
   * meanwhile: one open, its fstat, and (unless the cache holds that version) a read of the same
   * fd. undefined when it does not exist.
   */
  async readStamped(path: string): Promise<{ text: string; mtimeMs: number } | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if (isNotFound(e)) {
        this.entries.delete(path);
        return undefined;
      }
      throw e;
    }
    try {
      const s = await fh.stat();
      let text = this.cached(path, s);
      if (text === undefined) {
        text = await fh.readFile('utf8');
        this.entries.set(path, { ino: s.ino, mtimeMs: s.mtimeMs, size: s.size, text });
      }
      return { text, mtimeMs: s.mtimeMs };
    } finally {
      await fh.close();
    }
  }

  /** The text cached for `path` if it is of the file `s` describes. */
  private cached(path: string, s: Stats): string | undefined {
    const hit = this.entries.get(path);
    return hit && hit.ino === s.ino && hit.mtimeMs === s.mtimeMs && hit.size === s.size ? hit.text : undefined;
  }
}

/** Whether a file exists, in one stat. */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}
