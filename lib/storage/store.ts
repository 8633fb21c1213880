/**
 * The filesystem backend: blobs, repositories and upload sessions under one data directory
 * (layout in paths.ts). `paths` is for the code that still keeps files of its own in the data
 * dir (transfers, the link state) until those move behind the seam too.
 */
import { mkdir, rm } from 'node:fs/promises';
import { FsBlobStorage } from './blobs.ts';
import { FsPartialBlobStorage } from './partial-blobs-fs.ts';
import { StorePaths } from './paths.ts';
import { FsRepositoryStorage } from './repositories.ts';
import type { Storage } from './storage.ts';
import { FsUploadStorage } from './uploads.ts';
import type { UploadLimits } from './storage.ts';

export interface StoreOptions {
  /** Open upload sessions allowed (unbounded without). */
  uploadLimits?: UploadLimits;
}

const HOUR = 3600_000;

export class FsStorage implements Storage {
  readonly paths: StorePaths;
  readonly blobs: FsBlobStorage;
  readonly partials: FsPartialBlobStorage;
  readonly repositories: FsRepositoryStorage;
  readonly uploads: FsUploadStorage;

  constructor(readonly root: string, opts: StoreOptions = {}) {
    this.paths = new StorePaths(root);
    this.blobs = new FsBlobStorage(this.paths);
    this.partials = new FsPartialBlobStorage(this.paths, this.blobs);
    this.repositories = new FsRepositoryStorage(this.paths);
    this.uploads = new FsUploadStorage(this.paths, this.blobs, this.repositories, opts.uploadLimits);
  }

  /** Creates the layout and removes what a crash left behind (temp files, week-old uploads). */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await this.blobs.init();
    await this.repositories.init();
    await this.uploads.init();
    await mkdir(this.paths.transfersDir, { recursive: true });
    await rm(this.paths.legacyChunkListsDir, { recursive: true, force: true });
    await this.blobs.sweep(HOUR);
    await this.uploads.sweep(7 * 24 * HOUR);
  }
}

/** The filesystem backend over root, created and swept. */
export async function openStore(root: string, opts: StoreOptions = {}): Promise<FsStorage> {
  const store = new FsStorage(root, opts);
  await store.init();
  return store;
}
