/**
 * What every blob store checks of content it takes in (BlobStorage.ingest, putBytes): its digest
 * and length against what was expected, with the same errors on every backend.
 */
import { RegistryError } from '../oci/errors.ts';
import { digestOf, newHash, requireDigest } from '../oci/digest.ts';
import type { IngestExpectation } from './storage.ts';

/**
 * The digest and length of content as it streams, against what was expected: SIZE_INVALID as
 * soon as it runs past the size, DIGEST_INVALID or SIZE_INVALID at the end.
 */
export class ContentCheck {
  size = 0;
  digest: string | undefined;
  private readonly hash;
  private readonly algorithm;

  constructor(private readonly expect: IngestExpectation) {
    this.algorithm = expect.digest ? requireDigest(expect.digest).algorithm : 'sha256';
    this.hash = newHash(this.algorithm);
  }

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    if (this.expect.size !== undefined && this.size > this.expect.size) {
      throw new RegistryError('SIZE_INVALID', `content is longer than the expected ${this.expect.size} bytes`);
    }
  }

  /** The digest, once the content ended; throws when it is not what was expected. */
  verify(): string {
    const digest = `${this.algorithm}:${this.hash.digest('hex')}`;
    if (this.expect.size !== undefined && this.size !== this.expect.size) {
      throw new RegistryError('SIZE_INVALID', `content length ${this.size} does not match the expected ${this.expect.size}`);
    }
    checkDigest(digest, this.expect.digest);
    this.digest = digest;
    return digest;
  }
}

/** The digest of bytes (with the algorithm of the one expected); DIGEST_INVALID when it is not that one. */
export function checkedDigestOf(bytes: Buffer, expectDigest?: string): string {
  const digest = digestOf(bytes, expectDigest ? requireDigest(expectDigest).algorithm : 'sha256');
  checkDigest(digest, expectDigest);
  return digest;
}

function checkDigest(digest: string, expected: string | undefined): void {
  if (expected !== undefined && digest !== expected) {
    throw new RegistryError('DIGEST_INVALID', `content digest ${digest} does not match ${expected}`, { expected, actual: digest });
  }
}
