/**
 * The nesting depth of JSON text, read from its bytes in one pass without recursion or
 * allocation (before JSON.parse, so a document nested a million deep costs one scan, not a stack).
 * The scan carries its state from one piece to the next, so a body can be checked as it arrives
 * and refused at the first piece past the bound instead of once it has been read whole.
 * Brackets inside strings do not count; malformed text is left for JSON.parse to refuse.
 */
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;

export class JsonDepthScan {
  private depth = 0;
  private inString = false;
  /** The previous piece ended on a backslash inside a string: this piece's first byte is escaped. */
  private escaped = false;
  private deeper = false;

  constructor(private readonly max: number) {}

  /** Reads the next piece of the text; true once the text so far nests deeper than max (it stops reading then). */
  push(bytes: Uint8Array): boolean {
    if (this.deeper) return true;
    let i = 0;
    if (this.escaped && bytes.length > 0) {
      this.escaped = false;
      i = 1;
    }
    for (; i < bytes.length; i++) {
      const b = bytes[i];
      if (this.inString) {
        if (b === BACKSLASH) {
          if (i + 1 === bytes.length) this.escaped = true;
          i++;
        } else if (b === QUOTE) {
          this.inString = false;
        }
      } else if (b === QUOTE) {
        this.inString = true;
      } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
        if (++this.depth > this.max) return (this.deeper = true);
      } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
        this.depth--;
      }
    }
    return false;
  }
}

/** Whether the text nests objects and arrays deeper than max (it stops reading once it does). */
export function nestsDeeperThan(bytes: Uint8Array, max: number): boolean {
  return new JsonDepthScan(max).push(bytes);
}
