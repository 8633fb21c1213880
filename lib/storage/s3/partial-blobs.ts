/**
 * The S3 backend's PartialBlobStorage: pull-through transfers in progress, as pieces under
 * partials/<alg>/<hex>/ (keys.ts). The interface is being written with the transfer engine; what
 * is here is what the rest of the code needs already (the store-size metric).
 */
import type { PartialBlobStorage } from '../partial-blobs.ts';
import type { S3Bucket } from './bucket.ts';
import { keys } from './keys.ts';

export class S3PartialBlobStorage implements PartialBlobStorage {
  constructor(private readonly bucket: S3Bucket) {}

  async usage(): Promise<{ bytes: number; count: number }> {
    let bytes = 0;
    const transfers = new Set<string>();
    for await (const o of this.bucket.list(keys.partials)) {
      bytes += o.size;
      transfers.add(o.key.split('/').slice(0, 3).join('/'));
    }
    return { bytes, count: transfers.size };
  }
}
