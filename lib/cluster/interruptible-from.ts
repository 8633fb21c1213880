/**
 * Readable.from for a generator that may wait long for its next chunk (a body held until the
 * blob verified, a follower polling the bucket for progress). Destroying the stream calls
 * `interrupt` at once, which must end the pending wait (destroy the source read from, abort a
 * signal). Plain Readable.from only asks the generator to return once that wait is over, and emits
 * 'close' only then: a client gone would keep its reader, and what it holds, until the next chunk.
 */
import { Readable } from 'node:stream';

export function interruptibleFrom(gen: AsyncGenerator<Buffer>, interrupt: () => void): Readable {
  return new InterruptibleReadable(gen, interrupt);
}

class InterruptibleReadable extends Readable {
  /** A pull loop runs: _read asks again only once it stopped (push said enough, or the end). */
  private pulling = false;

  constructor(private readonly gen: AsyncGenerator<Buffer>, private readonly interrupt: () => void) {
    super();
  }

  override _read(): void {
    if (this.pulling) return;
    this.pulling = true;
    void this.pull();
  }

  private async pull(): Promise<void> {
    try {
      for (;;) {
        const next = await this.gen.next();
        if (next.done) {
          this.push(null);
          return;
        }
        if (!this.push(next.value)) return;
      }
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      this.pulling = false;
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.interrupt();
    // Resolves once the interrupted wait is over and the generator's finally blocks ran.
    this.gen.return(undefined).then(() => cb(err), (e: unknown) => cb((e as Error | null) ?? err));
  }
}
