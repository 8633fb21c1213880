/** The spec's n/last pagination over a sorted list. */
import type { Page, PageResult } from './types.ts';

export function paginate(sorted: readonly string[], page: Page): PageResult<string> {
  const after = page.last === undefined ? sorted : sorted.filter((x) => x > page.last!);
  if (page.n === undefined || after.length <= page.n) return { items: [...after] };
  const items = after.slice(0, page.n);
  return { items, next: items.length > 0 ? items[items.length - 1] : undefined };
}
