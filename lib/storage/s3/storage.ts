/**
 * The S3 backend as a whole: blobs, repositories, upload sessions and pull-through transfers in
 * progress, all in one bucket under storage.prefix (keys.ts), shared by every replica that opens
 * it. Credentials are read here (env or credentialsFile), never logged.
 */
import type { S3StorageConfig } from '../../config/schema.ts';
import { RegistryError } from '../../oci/errors.ts';
import { OperatorError } from '../../operator-error.ts';
import { resolveStorageCredentials } from '../../config/secrets.ts';
import type { PartialBlobStorage } from '../partial-blobs.ts';
import type { Storage, UploadLimits } from '../storage.ts';
import { S3BlobStorage, type SignGet } from './blobs.ts';
import { S3Bucket } from './bucket.ts';
import { createS3Client } from './client.ts';
import { presignGet } from './presign.ts';
import { S3PartialBlobStorage } from './partial-blobs.ts';
import { S3RepositoryStorage } from './repositories.ts';
import { S3UploadStorage } from './uploads.ts';

export interface S3StorageOptions {
  /** The config file, for messages about missing credentials. */
  configFile: string;
  uploadLimits?: UploadLimits;
  env?: NodeJS.ProcessEnv;
}

export class S3Storage implements Storage {
  readonly blobs: S3BlobStorage;
  readonly repositories: S3RepositoryStorage;
  readonly uploads: S3UploadStorage;
  readonly partials: PartialBlobStorage;

  /** signGet: blob GETs are redirected to URLs it signs (storage.redirect); without, blobs are streamed. */
  constructor(readonly bucket: S3Bucket, opts: { uploadLimits?: UploadLimits; signGet?: SignGet } = {}) {
    this.blobs = new S3BlobStorage(bucket, opts.signGet);
    this.repositories = new S3RepositoryStorage(bucket);
    this.uploads = new S3UploadStorage(bucket, this.repositories, opts.uploadLimits);
    this.partials = new S3PartialBlobStorage(bucket);
  }

  /** Checks the bucket answers (a clear error at start rather than at the first pull), counts open sessions. */
  async init(): Promise<void> {
    await this.bucket.head('ferry-start-check');
    await this.uploads.init();
  }

  close(): void {
    this.bucket.client.destroy();
  }
}

/** The S3 store the config describes, checked and ready. */
export async function openS3Storage(config: S3StorageConfig, opts: S3StorageOptions): Promise<S3Storage> {
  const credentials = resolveStorageCredentials(opts.configFile, config, opts.env);
  const client = createS3Client(config, credentials);
  const { redirect } = config;
  // URLs for clients are signed for the address they reach the store at (no connection is made to it).
  const signer = redirect?.endpoint ? createS3Client({ ...config, endpoint: redirect.endpoint }, credentials) : client;
  const signGet: SignGet | undefined = redirect ? (key) => presignGet(signer, config.bucket, config.prefix + key, redirect.expirySeconds) : undefined;
  const storage = new S3Storage(new S3Bucket(client, config.bucket, config.prefix), { ...opts, ...(signGet ? { signGet } : {}) });
  try {
    await storage.init();
  } catch (e) {
    storage.close();
    // At start the operator must fix it: one line naming the store and why (no key, ever).
    const why = e instanceof RegistryError ? e.message.replace(/^object store: .*? failed: /, '') : String(e);
    throw new OperatorError(`storage: cannot use bucket ${config.bucket}${config.endpoint ? ` at ${config.endpoint}` : ''}: ${why}`, 'runtime', { cause: e });
  }
  return storage;
}
