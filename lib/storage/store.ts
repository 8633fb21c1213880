/** The filesystem store: blobs, repositories and uploads under one data directory. */
import { mkdir } from 'node:fs/promises';
import { BlobStore } from './blobs.ts';
import { StorePaths } from './paths.ts';
import { RepositoryStore } from './repositories.ts';
import { UploadStore, type UploadLimits } from './uploads.ts';

export interface StoreOptions {
  /** Open upload sessions allowed (unbounded without). */
  uploadLimits?: UploadLimits;
}

const HOUR = 3600_000;

export class Store {
  readonly paths: StorePaths;
  readonly blobs: BlobStore;
  readonly repos: RepositoryStore;
  readonly uploads: UploadStore;

  constructor(readonly root: string, opts: StoreOptions = {}) {
    this.paths = new StorePaths(root);
    this.blobs = new BlobStore(this.paths);
    this.repos = new RepositoryStore(this.paths);
    this.uploads = new UploadStore(this.paths, this.blobs, this.repos, opts.uploadLimits);
  }

  /** Creates the layout and removes what a crash left behind (temp files, week-old uploads). */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await this.blobs.init();
    await this.repos.init();
    await this.uploads.init();
    await mkdir(this.paths.transfersDir, { recursive: true });
    await this.blobs.cleanTemp(HOUR);
    await this.uploads.cleanStale(7 * 24 * HOUR);
  }
}

export async function openStore(root: string, opts: StoreOptions = {}): Promise<Store> {
  const store = new Store(root, opts);
  await store.init();
  return store;
}
