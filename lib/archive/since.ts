/**
 * `--since`: what the other side already has, so an export leaves it out. Accepts
 *   - an index.json (of the other side's OCI layout): its manifests, and everything they
 *     reference as far as this store can tell (a manifest this store holds is walked);
 *   - an OCI layout directory: its index.json as above, plus every blob file present;
 *   - a JSON array of digests, or text with digests (whitespace separated, # comments).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest } from '../oci/digest.ts';
import { readdirOr } from '../storage/blobs.ts';
import { manifestClosure } from '../storage/references.ts';
import type { Storage } from '../storage/storage.ts';
import { BundleError } from './bundle.ts';

/** Digests named by a since-file's text. */
export function parseSinceText(file: string, text: string): { digests: string[]; manifests: string[] } {
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (e) {
      throw new BundleError(file, `not valid JSON: ${(e as Error).message}`);
    }
    if (Array.isArray(json)) {
      const digests = json.filter((d): d is string => typeof d === 'string' && isDigest(d));
      if (digests.length !== json.length) throw new BundleError(file, 'the list holds something other than digests');
      return { digests, manifests: digests };
    }
    const manifests = (json as { manifests?: Array<{ digest?: unknown }> }).manifests;
    if (!Array.isArray(manifests)) throw new BundleError(file, 'neither an index.json (manifests) nor a list of digests');
    const ds = manifests.map((m) => m.digest).filter((d): d is string => typeof d === 'string' && isDigest(d));
    return { digests: ds, manifests: ds };
  }
  const words = trimmed.split('\n').map((l) => l.replace(/#.*/, '')).join(' ').split(/\s+/).filter(Boolean);
  const bad = words.find((w) => !isDigest(w));
  if (bad !== undefined) throw new BundleError(file, `not a digest: ${JSON.stringify(bad)}`);
  return { digests: words, manifests: words };
}

export async function readSince(store: Storage, path: string): Promise<Set<string>> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new BundleError(path, 'no such file or directory');
  const have = new Set<string>();
  let file = path;
  if (s.isDirectory()) {
    file = join(path, 'index.json');
    for (const alg of await readdirOr(join(path, 'blobs'))) {
      for (const hex of await readdirOr(join(path, 'blobs', alg))) {
        if (isDigest(`${alg}:${hex}`)) have.add(`${alg}:${hex}`);
      }
    }
    if (!(await stat(file).catch(() => undefined))) return have;
  }
  const parsed = parseSinceText(file, await readFile(file, 'utf8'));
  for (const d of parsed.digests) have.add(d);
  for (const m of parsed.manifests) {
    if (!(await store.blobs.has(m))) continue;
    try {
      const closure = await manifestClosure(store, m);
      for (const x of closure.manifests) have.add(x.digest);
      for (const b of closure.blobs.keys()) have.add(b);
    } catch {
      // Not a manifest (a plain blob digest), or one this store holds only in part.
    }
  }
  return have;
}
