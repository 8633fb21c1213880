/** Result tables: serve.ts's line per figure (ferry beside the reference), and plain columns. */

export interface Row {
  metric: string;
  unit: string;
  ferry: number;
  reference: number;
  /** true for req/s and MB/s; false for seconds and memory. */
  higherIsBetter: boolean;
  /** A pass condition on ferry's own figure (e.g. RSS < 200 MB) that replaces the comparison. */
  limit?: { max: number; label: string };
}

/** ferry/reference for higher-is-better figures, reference/ferry otherwise: >= 1 means ferry wins. */
export function advantage(r: Row): number {
  return r.higherIsBetter ? r.ferry / r.reference : r.reference / r.ferry;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return n.toFixed(0);
  if (Math.abs(n) >= 100) return n.toFixed(1);
  return n.toFixed(2);
}

export function renderTable(rows: Row[]): string {
  const header = ['figure', 'unit', 'ferry', 'reference', 'ferry/ref', 'target met?'];
  const lines = rows.map((r) => {
    const ratio = r.ferry / r.reference;
    const verdict = r.limit
      ? `${r.ferry < r.limit.max ? 'yes' : 'NO'} (target ${r.limit.label})`
      : `${advantage(r) >= 1 ? 'yes' : 'NO'}${r.higherIsBetter ? '' : ' (lower is better)'}`;
    return [r.metric, r.unit, fmt(r.ferry), fmt(r.reference), ratio.toFixed(2), verdict];
  });
  return renderColumns(header, lines, (i) => i >= 2 && i <= 4);
}

/** A plain text table: a header, a rule, the lines; columns for which `right(i)` is true are right-aligned. */
export function renderColumns(header: string[], lines: string[][], right: (column: number) => boolean): string {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const pad = (cells: string[]): string => cells.map((c, i) => (right(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [pad(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(pad)].join('\n');
}
