/** Repository names and tags: the OCI grammar, checked before a name becomes a path. */
import { RegistryError } from './errors.ts';
import { isDigest } from './digest.ts';

// path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*, joined by "/".
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export function isValidName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return false;
  return name.split('/').every((c) => COMPONENT.test(c));
}

export function requireName(name: string): string {
  if (!isValidName(name)) throw new RegistryError('NAME_INVALID', `invalid repository name: ${JSON.stringify(name)}`, { name });
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export function requireTag(tag: string): string {
  if (!isValidTag(tag)) throw new RegistryError('TAG_INVALID', `invalid tag: ${JSON.stringify(tag)}`, { tag });
  return tag;
}

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

/** A manifest reference is a tag or a digest; anything else is a client error. */
export function parseReference(ref: string): Reference {
  if (ref.includes(':')) {
    if (!isDigest(ref)) throw new RegistryError('DIGEST_INVALID', `invalid digest: ${JSON.stringify(ref)}`, { digest: ref });
    return { kind: 'digest', digest: ref };
  }
  if (!isValidTag(ref)) throw new RegistryError('MANIFEST_INVALID', `invalid tag: ${JSON.stringify(ref)}`, { tag: ref });
  return { kind: 'tag', tag: ref };
}

/**
 * A reference a read (GET/HEAD of a manifest) asks for. A tag that could never have been pushed
 * names nothing, so it is MANIFEST_UNKNOWN (404), not a malformed request; a malformed digest
 * stays DIGEST_INVALID, and a write keeps parseReference's MANIFEST_INVALID.
 */
export function parseReadReference(name: string, ref: string): Reference {
  if (!ref.includes(':') && !isValidTag(ref)) {
    throw new RegistryError('MANIFEST_REFERENCE_IMPOSSIBLE', `manifest unknown: ${name}:${JSON.stringify(ref)} (not a valid tag)`, { name, reference: ref });
  }
  return parseReference(ref);
}
