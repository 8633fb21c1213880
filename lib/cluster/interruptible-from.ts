/**
 * Readable.from for a generator that may wait long for its next chunk (a body held until the
 * blob verified, a follower polling the bucket for progress). Destroying the stream calls
 * `interrupt` at once, which must end the pending wait (destroy the source read from, abort a
 * signal). Plain Readable.from only asks the generator to return once that wait is over, and emits
 * 'close' only then: a client gone would keep its reader, and what it holds, until the next chunk.
 */
import { Readable } from 'node:stream';

export function interruptibleFrom(gen: AsyncGenerator<Buffer>, interrupt: () => void): Readable {
  const out = Readable.from(gen, { objectMode: false });
  const destroy = out._destroy.bind(out);
  out._destroy = (err, cb) => {
    interrupt();
    destroy(err, cb);
  };
  return out;
}
