/**
 * "did you mean": the known names closest to a mistyped one, for one-line operator errors.
 * Closeness is the edit distance (insert, delete, substitute, swap of neighbours), case-blind.
 */

/** Optimal string alignment distance between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known names within a third of `given`'s length (at least 2 edits) of it, closest first. */
export function closestNames(given: string, known: Iterable<string>, max = 3): string[] {
  const g = given.trim().toLowerCase();
  const limit = Math.max(2, Math.floor(g.length / 3));
  return [...known]
    .map((name) => ({ name, d: editDistance(g, name.toLowerCase()) }))
    .filter((x) => x.d <= limit)
    .sort((x, y) => x.d - y.d || (x.name < y.name ? -1 : 1))
    .slice(0, max)
    .map((x) => x.name);
}

/** `; did you mean "x"? (known: a, b, c)`, or `; known: a, b, c` when nothing is close: the tail of a one-line error. */
export function didYouMean(given: string, known: readonly string[]): string {
  const close = closestNames(given, known);
  const list = `known: ${known.join(', ')}`;
  return close.length > 0 ? `; did you mean ${close.map((n) => JSON.stringify(n)).join(' or ')}? (${list})` : `; ${list}`;
}
