/** BlobStorage.read for callers that expect the blob: a missing one is BLOB_UNKNOWN. */
import { RegistryError } from '../oci/errors.ts';
import type { ByteRange } from '../oci/range.ts';
import type { BlobStorage, BlobStream } from './storage.ts';

export async function openBlob(blobs: BlobStorage, digest: string, range?: ByteRange): Promise<BlobStream> {
  const stream = await blobs.read(digest, range);
  if (!stream) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { digest });
  return stream;
}
