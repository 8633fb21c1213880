/**
 * The store the config names (storage.kind): the data dir (fs, the default) or an S3 bucket.
 * The one place that picks the backend, for the service and the commands alike.
 */
import type { LoadedConfig } from '../config/load.ts';
import type { Storage } from './storage.ts';
import { openStore } from './store.ts';

export interface OpenedStorage extends Storage {
  /** Releases what the backend holds open (the S3 client's connections); nothing for fs. */
  close?(): void;
}

export async function openStorage(config: Pick<LoadedConfig, 'file' | 'dataDir' | 'storage' | 'limits'>, env: NodeJS.ProcessEnv = process.env): Promise<OpenedStorage> {
  const uploadLimits = { perClient: config.limits.uploadSessionsPerClient, perRepository: config.limits.uploadSessionsPerRepository };
  if (config.storage.kind === 's3') {
    // Loaded only when used: the AWS SDK costs every fs command and test ~0.3 s to import.
    const { openS3Storage } = await import('./s3/storage.ts');
    return openS3Storage(config.storage, { configFile: config.file, uploadLimits, env });
  }
  return openStore(config.dataDir, { uploadLimits });
}

/** Where the store is, in one phrase (no credential): the data dir, or s3://bucket/prefix at the endpoint. */
export function describeStorage(config: Pick<LoadedConfig, 'dataDir' | 'storage'>): string {
  if (config.storage.kind === 's3') return `s3://${config.storage.bucket}/${config.storage.prefix}${config.storage.endpoint ? ` at ${config.storage.endpoint}` : ''}`;
  return config.dataDir;
}
