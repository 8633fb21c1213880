/**
 * What each upstream's link learned (connections, goodput, whether slow start ended), kept as one
 * JSON record of the transfer state (PartialBlobStorage, key "links"; the fs backend's
 * transfers/links.json) so the next transfer, and the next process, starts where the last one
 * left off instead of at the floor:
 *
 *   { "<upstream>": { "connections": 24, "slowStart": false, "rate": 12582912, "savedAt": "..." } }
 *
 * Written (atomically) at most once per saveDelayMs, and on flush().
 */
import type { TransferStateStore } from '../storage/partial-blobs.ts';
import type { LearnedLink } from './link-budget.ts';

const KEY = 'links';

interface Saved extends LearnedLink {
  savedAt: string;
}

export class LinkState {
  private readonly links = new Map<string, Saved>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly state: TransferStateStore,
    private readonly saveDelayMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** What was saved last (nothing yet, or unreadable: every link starts at its floor). */
  static async load(state: TransferStateStore, saveDelayMs = 5000, onError: (err: unknown) => void = () => {}): Promise<LinkState> {
    const loaded = new LinkState(state, saveDelayMs, onError);
    const text = await state.readState(KEY).catch((e: unknown) => {
      onError(e);
      return undefined;
    });
    if (text !== undefined) loaded.parse(text);
    return loaded;
  }

  private parse(text: string): void {
    try {
      const json = JSON.parse(text) as Record<string, Partial<Saved>>;
      for (const [name, s] of Object.entries(json)) {
        if (typeof s?.connections !== 'number' || typeof s.slowStart !== 'boolean' || typeof s.rate !== 'number') continue;
        this.links.set(name, { connections: s.connections, slowStart: s.slowStart, rate: s.rate, savedAt: String(s.savedAt ?? '') });
      }
    } catch (e) {
      this.onError(e);
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
    this.writing = this.writing.then(() => this.state.writeState(KEY, body)).catch((e: unknown) => this.onError(e));
    return this.writing;
  }
}
