/** HTTP byte ranges, pure: the one range type, a Range header against a size, a Content-Range. */

/** Bytes start..end, both inclusive (as HTTP writes them). The one byte-range type of ferry. */
export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/** What a Content-Range names: the bytes, and the whole length when it gives one (not "*"). */
export interface ContentRange extends ByteRange {
  total?: number;
}

export type RangeResult = { kind: 'full' } | { kind: 'partial'; range: ByteRange } | { kind: 'unsatisfiable' };

/**
 * A single range (bytes=a-b, a-, -n). Several ranges or a header we do not understand mean the
 * whole body (RFC 9110 lets a server ignore Range); an out-of-bounds one is unsatisfiable.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (!header) return { kind: 'full' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return { kind: 'full' };
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return { kind: 'full' };
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(a);
  let end = b === '' ? size - 1 : Number(b);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return { kind: 'unsatisfiable' };
  if (start >= size) return { kind: 'unsatisfiable' };
  if (end >= size) end = size - 1;
  return { kind: 'partial', range: { start, end } };
}

/**
 * A Content-Range: a response's ("bytes a-b/size", "bytes a-b/*") or an upload chunk's ("a-b",
 * Docker's form, or "bytes a-b"). undefined when there is none, 'invalid' when malformed.
 */
export function parseContentRange(header: string | undefined): ContentRange | undefined | 'invalid' {
  if (header === undefined || header === '') return undefined;
  const m = /^(?:bytes[ =]\s*)?(\d+)-(\d+)(?:\/(\d+|\*))?$/i.exec(header.trim());
  if (!m) return 'invalid';
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return 'invalid';
  return m[3] === undefined || m[3] === '*' ? { start, end } : { start, end, total: Number(m[3]) };
}
