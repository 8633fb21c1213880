/**
 * A bundle to import: a `docker save` tarball, an OCI image layout (tarred or a directory) or an
 * extracted docker save directory. Metadata files are small and held in memory; every other file
 * is content, reached by path and already (or on demand) in the blob store.
 */
import { OperatorError } from '../operator-error.ts';
import { parseDigest } from '../oci/digest.ts';

/** Files that describe a bundle; never stored as blobs. */
export const METADATA_FILES: ReadonlySet<string> = new Set(['manifest.json', 'index.json', 'oci-layout', 'repositories']);
export const MAX_METADATA_BYTES = 16 * 1024 * 1024;

export interface StoredFile {
  digest: string;
  size: number;
}

export interface Bundle {
  /** The file or directory, for messages. */
  readonly label: string;
  /** A metadata file's bytes. */
  meta(path: string): Buffer | undefined;
  /** The content at path, in the store (verified); undefined when the bundle does not hold it. */
  blob(path: string): Promise<StoredFile | undefined>;
}

export class BundleError extends OperatorError {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'BundleError';
  }
}

/** `./a//b` -> `a/b`; undefined for a path that climbs out (`../x`, absolute after normalising). */
export function normalizeEntryPath(path: string): string | undefined {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out.length ? out.join('/') : undefined;
}

/** The digest an OCI layout path names (blobs/sha256/<hex>), if it names one. */
export function digestFromPath(path: string): string | undefined {
  const m = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(path);
  if (!m) return undefined;
  return parseDigest(`${m[1]}:${m[2]}`)?.digest;
}

export function blobPath(digest: string): string {
  const i = digest.indexOf(':');
  return `blobs/${digest.slice(0, i)}/${digest.slice(i + 1)}`;
}

/** Legacy docker save v1 leftovers (<id>/json, <id>/VERSION): describe layers docker no longer needs. */
export function isLegacyV1Metadata(path: string): boolean {
  return /^[a-f0-9]{64}\/(json|VERSION)$/.test(path);
}

export function parseJson<T>(bundle: Bundle, path: string, bytes: Buffer): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new BundleError(bundle.label, `${path} is not valid JSON: ${(e as Error).message}`);
  }
}
