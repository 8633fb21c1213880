/**
 * The memory backend: every interface of lib/storage/storage.ts over maps, for unit tests (no
 * disk, no cleanup). Not durable: a new instance starts empty.
 */
import type { Storage, UploadLimits } from '../storage.ts';
import { MemoryBlobStorage } from './blobs.ts';
import { MemoryPartialBlobStorage } from './partial-blobs.ts';
import { MemoryRepositoryStorage } from './repositories.ts';
import { MemoryUploadStorage } from './uploads.ts';

export interface MemoryStorageOptions {
  uploadLimits?: UploadLimits;
  /** The clock for touchedAt, tag checks and upload idleness (tests move it). */
  now?: () => number;
}

export class MemoryStorage implements Storage {
  readonly blobs: MemoryBlobStorage;
  readonly partials: MemoryPartialBlobStorage;
  readonly repositories: MemoryRepositoryStorage;
  readonly uploads: MemoryUploadStorage;

  constructor(opts: MemoryStorageOptions = {}) {
    const now = opts.now ?? Date.now;
    this.blobs = new MemoryBlobStorage(now);
    this.partials = new MemoryPartialBlobStorage(this.blobs);
    this.repositories = new MemoryRepositoryStorage(now);
    this.uploads = new MemoryUploadStorage(this.blobs, this.repositories, opts.uploadLimits, now);
  }
}
