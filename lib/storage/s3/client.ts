/**
 * The S3 client of the object store, built from the config's storage section. Settings every S3
 * server ferry targets needs (Ceph RGW Pacific measured): path-style addressing, checksums only
 * when an operation requires them (with the SDK's default a streamed body is refused 411), and a
 * request timeout, since a full RGW hangs writes rather than failing them.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { S3StorageConfig } from '../../config/schema.ts';
import type { StorageCredentials } from '../../config/secrets.ts';

export type S3ClientSettings = Pick<S3StorageConfig, 'endpoint' | 'region' | 'forcePathStyle' | 'requestTimeoutSeconds' | 'maxSockets'>;

export function createS3Client(settings: S3ClientSettings, credentials: StorageCredentials): S3Client {
  // The SDK is pinned to a release that supports Node 20 (package.json); its notice that later
  // releases will not would only alarm an operator reading the service's output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const agent = { keepAlive: true, maxSockets: settings.maxSockets };
  return new S3Client({
    ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // ferry retries what matters itself (fills resume, clients retry); the SDK's 3 attempts on a
    // hung store would triple the time before a client hears 503.
    maxAttempts: 2,
    requestHandler: {
      connectionTimeout: 5_000,
      requestTimeout: settings.requestTimeoutSeconds * 1000,
      httpAgent: new HttpAgent(agent),
      httpsAgent: new HttpsAgent(agent),
    },
  });
}
