/** Digests: parsing, validation and hashing. A digest is validated here before it becomes a path. */
import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.ts';

export type Algorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };
// OCI grammar: algorithm ":" encoded; we accept only the algorithms we can verify.
const DIGEST_RE = /^(sha256|sha512):([a-f0-9]+)$/;

export interface ParsedDigest {
  algorithm: Algorithm;
  hex: string;
  digest: string;
}

/** Parses a digest or returns undefined; never throws. */
export function parseDigest(value: string): ParsedDigest | undefined {
  const m = DIGEST_RE.exec(value);
  if (!m) return undefined;
  const algorithm = m[1] as Algorithm;
  const hex = m[2] as string;
  if (hex.length !== HEX_LENGTH[algorithm]) return undefined;
  return { algorithm, hex, digest: value };
}

export function isDigest(value: string): boolean {
  return parseDigest(value) !== undefined;
}

/** Parses a digest or throws DIGEST_INVALID (400). */
export function requireDigest(value: string | undefined | null): ParsedDigest {
  const parsed = value ? parseDigest(value) : undefined;
  if (!parsed) throw new RegistryError('DIGEST_INVALID', `invalid digest: ${JSON.stringify(value ?? '')}`, { digest: value ?? null });
  return parsed;
}

export function newHash(algorithm: Algorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Buffer | string, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}
