/**
 * Partial blobs: pull-through transfers in progress (today's part file and journal: positional
 * writes, the ranges held, commit into BlobStorage, discard, sweep).
 *
 * Placeholder written with the storage seam (lib/storage/storage.ts); the transfer engine's
 * owner fills in the interface. What is here is what the rest of the code needs already.
 */

export interface PartialBlobStorage {
  /** Bytes held by unfinished transfers and how many there are (the store-size metric). */
  usage(): Promise<{ bytes: number; count: number }>;
}
