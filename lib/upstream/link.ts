/** Link header pagination (RFC 8288), as registries use it for tag lists. Pure. */

/** The URL of the rel="next" link, resolved against the current page; undefined on the last page. */
export function nextPageUrl(link: string | string[] | undefined, current: URL): URL | undefined {
  const values = Array.isArray(link) ? link : link ? [link] : [];
  for (const value of values) {
    for (const m of value.matchAll(/<([^>]*)>((?:\s*;\s*[^;,=\s]+\s*=\s*(?:"[^"]*"|[^;,\s]*))*)/g)) {
      const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]*))/i.exec(m[2] ?? '');
      const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
      if (!rels.includes('next')) continue;
      try {
        return new URL(m[1] as string, current);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
