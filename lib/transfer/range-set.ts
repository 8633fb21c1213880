/** A set of byte offsets kept as sorted, merged half-open intervals [start, end). Pure. */
export interface Interval {
  start: number;
  end: number;
}

export class RangeSet {
  private items: Interval[] = [];

  constructor(intervals: Iterable<Interval> = []) {
    for (const i of intervals) this.add(i.start, i.end);
  }

  get intervals(): readonly Interval[] {
    return this.items;
  }

  /** Bytes covered. */
  get size(): number {
    let n = 0;
    for (const i of this.items) n += i.end - i.start;
    return n;
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    const out: Interval[] = [];
    let s = start;
    let e = end;
    let placed = false;
    for (const i of this.items) {
      if (i.end < s) out.push(i);
      else if (i.start > e) {
        if (!placed) out.push({ start: s, end: e });
        placed = true;
        out.push(i);
      } else {
        s = Math.min(s, i.start);
        e = Math.max(e, i.end);
      }
    }
    if (!placed) out.push({ start: s, end: e });
    this.items = out;
  }

  remove(start: number, end: number): void {
    if (end <= start) return;
    const out: Interval[] = [];
    for (const i of this.items) {
      if (i.end <= start || i.start >= end) out.push(i);
      else {
        if (i.start < start) out.push({ start: i.start, end: start });
        if (i.end > end) out.push({ start: end, end: i.end });
      }
    }
    this.items = out;
  }

  clear(): void {
    this.items = [];
  }

  /** End of the covered run that contains `from` (`from` itself when it is not covered). */
  coveredEnd(from: number): number {
    for (const i of this.items) if (i.start <= from && from < i.end) return i.end;
    return from;
  }

  /** The parts of [start, end) not covered, in order. */
  gaps(start: number, end: number): Interval[] {
    const out: Interval[] = [];
    let at = start;
    for (const i of this.items) {
      if (i.end <= at) continue;
      if (i.start >= end) break;
      if (i.start > at) out.push({ start: at, end: i.start });
      at = Math.max(at, i.end);
      if (at >= end) break;
    }
    if (at < end) out.push({ start: at, end });
    return out;
  }
}
