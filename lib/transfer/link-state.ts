/**
 * What each upstream's link learned (connections, goodput, whether slow start ended), kept in one
 * JSON file of the data dir so the next transfer, and the next process, starts where the last one
 * left off instead of at the floor:
 *
 *   { "<upstream>": { "connections": 24, "slowStart": false, "rate": 12582912, "savedAt": "..." } }
 *
 * Written atomically (temp, fsync, rename) at most once per saveDelayMs, and on flush().
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../storage/atomic.ts';
import type { LearnedLink } from './link-budget.ts';

interface Saved extends LearnedLink {
  savedAt: string;
}

export class LinkStateFile {
  private readonly links = new Map<string, Saved>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    /** Temp dir on the same filesystem (the store's tmp). */
    private readonly tmpDir: string,
    private readonly saveDelayMs = 5000,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // none yet: every link starts at its floor
    }
    if (text === undefined) return;
    try {
      const json = JSON.parse(text) as Record<string, Partial<Saved>>;
      for (const [name, s] of Object.entries(json)) {
        if (typeof s?.connections !== 'number' || typeof s.slowStart !== 'boolean' || typeof s.rate !== 'number') continue;
        this.links.set(name, { connections: s.connections, slowStart: s.slowStart, rate: s.rate, savedAt: String(s.savedAt ?? '') });
      }
    } catch (e) {
      onError(e);
    }
  }

  /** What the link to `upstream` had learned when last saved. */
  get(upstream: string): LearnedLink | undefined {
    const s = this.links.get(upstream);
    return s ? { connections: s.connections, slowStart: s.slowStart, rate: s.rate } : undefined;
  }

  /** Records a link's state; the file follows within saveDelayMs. */
  set(upstream: string, learned: LearnedLink): void {
    this.links.set(upstream, { ...learned, savedAt: new Date().toISOString() });
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write();
    }, this.saveDelayMs);
    this.timer.unref();
  }

  /** Writes what is pending now. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.write();
    }
    await this.writing;
  }

  /** Writes what is pending (the process is stopping). */
  close(): Promise<void> {
    return this.flush();
  }

  private write(): Promise<void> {
    const body = `${JSON.stringify(Object.fromEntries(this.links), null, 2)}\n`;
    this.writing = this.writing.then(() => writeFileAtomic(this.tmpDir, this.path, body)).catch((e: unknown) => this.onError(e));
    return this.writing;
  }
}
