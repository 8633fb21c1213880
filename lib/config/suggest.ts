/** "Did you mean": the known key of a config object closest to a mistyped one. */
import { configJsonSchema } from './json-schema.ts';

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  /** A discriminated union (storage: fs or s3): the keys of every branch count. */
  oneOf?: SchemaNode[];
}

let root: SchemaNode | undefined;

/** The keys the schema allows at `path` (record values and array items included). */
export function knownKeys(path: ReadonlyArray<PropertyKey>): string[] {
  let node: SchemaNode | undefined = (root ??= configJsonSchema() as SchemaNode);
  for (const part of path) {
    if (!node) return [];
    if (typeof part === 'number') node = node.items;
    else node = propertiesOf(node)[String(part)] ?? (typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined);
  }
  return Object.keys(node ? propertiesOf(node) : {});
}

function propertiesOf(node: SchemaNode): Record<string, SchemaNode> {
  return Object.assign({}, ...(node.oneOf ?? []).map((branch) => branch.properties ?? {}), node.properties) as Record<string, SchemaNode>;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j] as number;
      row[j] = Math.min(up + 1, (row[j - 1] as number) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length] as number;
}

/** The candidate nearest to `key` (case-insensitive), if it is near enough to be a typo. */
export function closest(key: string, candidates: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of candidates) {
    const d = editDistance(key.toLowerCase(), name.toLowerCase());
    if (!best || d < best.d) best = { name, d };
  }
  return best && best.d <= Math.max(1, Math.floor(best.name.length / 3)) ? best.name : undefined;
}
