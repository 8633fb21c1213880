/**
 * A throwaway Ceph RGW (one mon, one memstore OSD, radosgw) in a temp dir on 127.0.0.1:random,
 * started by test/ceph/ceph-up.sh and stopped by ceph-down.sh (by the pid files in that dir).
 * Cold start ~2 s: start one per test file (`useRgw()` in the outer describe) and give each test
 * its own bucket or key prefix. Needs Debian's ceph-mon ceph-osd radosgw ceph-common.
 */
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../lib/storage/s3/client.ts';
import { S3Bucket } from '../../lib/storage/s3/bucket.ts';
import type { S3StorageConfig } from '../../lib/config/schema.ts';
import { freePort, onExitSync, run } from './processes.ts';

const SCRIPTS = path.resolve(import.meta.dirname, '../ceph');
const DAEMONS = ['client.rgw.a', 'osd.0', 'mgr.x', 'mon.a'];

export interface RgwOptions {
  /** memstore (default: RAM, ~2x the bytes stored) or bluestore (a sparse file; +3.5 s start). */
  objectstore?: 'memstore' | 'bluestore';
  /** Store size; writes hang (no error) once it is full. Default: the script's (2 GiB memstore). */
  storeBytes?: number;
}

export interface Rgw {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  port: number;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The cluster's dir (config, logs, pid files); removed by stop(). */
  dir: string;
  /** AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION for a child process. */
  env: Record<string, string>;
  /** A client with the settings ferry uses (lib/storage/s3/client.ts). */
  client(): S3Client;
  /** Creates a bucket (a fresh name when none is given) and returns its name. */
  createBucket(name?: string): Promise<string>;
  /** The bucket as the backend sees it, under an optional key prefix. */
  bucket(name: string, prefix?: string): S3Bucket;
  /** A config storage section for this RGW (credentials come from env). */
  storageConfig(bucket: string, extra?: Partial<S3StorageConfig>): S3StorageConfig;
  /** Writes this RGW's keys as an AWS shared credentials file in dir (for storage.credentialsFile); returns its path. */
  writeCredentialsFile(dir: string): Promise<string>;
  /** Stops the daemons (SIGKILL by pid file: nothing to keep) and removes dir. Idempotent. */
  stop(): Promise<void>;
}

let bucketCounter = 0;

export async function startRgw(opts: RgwOptions = {}): Promise<Rgw> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-ceph-'));
  const dir = path.join(work, 'c');
  const unregister = onExitSync(() => {
    killDaemonsNow(dir);
    rmSync(work, { recursive: true, force: true });
  });
  const env = {
    ...process.env,
    ...(opts.objectstore ? { OBJECTSTORE: opts.objectstore } : {}),
    ...(opts.storeBytes ? { STORE_BYTES: String(opts.storeBytes) } : {}),
  };
  let port = 0;
  let lastError = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    port = await freePort();
    const res = await run('bash', [path.join(SCRIPTS, 'ceph-up.sh'), dir, String(port)], { env, timeoutMs: 90_000 });
    if (res.code === 0) {
      lastError = '';
      break;
    }
    lastError = `ceph-up.sh exit ${res.code ?? res.signal}: ${res.stderr.trim().split('\n').slice(-8).join('\n')}`;
    await run('bash', [path.join(SCRIPTS, 'ceph-down.sh'), dir]);
    // A port taken between freePort and radosgw's bind is worth another try; anything else is not.
    if (!/in use|exited|timeout/.test(res.stderr)) break;
  }
  if (lastError) {
    unregister();
    rmSync(work, { recursive: true, force: true });
    throw new Error(lastError);
  }
  const vars = parseEnvFile(readFileSync(path.join(dir, 's3.env'), 'utf8'));
  const endpoint = required(vars, 'S3_ENDPOINT');
  const accessKeyId = required(vars, 'AWS_ACCESS_KEY_ID');
  const secretAccessKey = required(vars, 'AWS_SECRET_ACCESS_KEY');
  const region = vars.AWS_REGION ?? 'us-east-1';
  const clientSettings = { endpoint, region, forcePathStyle: true, requestTimeoutSeconds: 30, maxSockets: 64 };
  let client: S3Client | undefined;
  const getClient = (): S3Client => (client ??= createS3Client(clientSettings, { accessKeyId, secretAccessKey }));
  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    port,
    accessKeyId,
    secretAccessKey,
    region,
    dir,
    env: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: region },
    client: getClient,
    async createBucket(name = `ferry-test-${process.pid}-${++bucketCounter}`) {
      await getClient().send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    bucket: (name, prefix = '') => new S3Bucket(getClient(), name, prefix),
    storageConfig: (bucket, extra = {}) => ({
      kind: 's3', endpoint, bucket, region, forcePathStyle: true, prefix: '', profile: 'default',
      requestTimeoutSeconds: 30, maxSockets: 64, ...extra,
    }),
    async writeCredentialsFile(into) {
      const file = path.join(into, 'credentials');
      await writeFile(file, `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n`);
      return file;
    },
    stop() {
      stopping ??= (async () => {
        client?.destroy();
        await run('bash', [path.join(SCRIPTS, 'ceph-down.sh'), dir], { timeoutMs: 30_000 });
        unregister();
        rmSync(work, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

/**
 * One RGW for the enclosing describe: started in before (cold start allowed 60 s), stopped in
 * after. Returns a getter valid inside tests and hooks.
 */
export function useRgw(opts: RgwOptions = {}): () => Rgw {
  let rgw: Rgw | undefined;
  before(async function () {
    this.timeout(60_000);
    rgw = await startRgw(opts);
  });
  after(async () => {
    await rgw?.stop();
  });
  return () => {
    if (!rgw) throw new Error('RGW not started (useRgw must be called in a describe, and used in tests or hooks)');
    return rgw;
  };
}

export interface RgwBucket {
  rgw(): Rgw;
  /** The describe's bucket, at its root. */
  root(): S3Bucket;
  /** A fresh key prefix of the bucket, as another store (one per test). */
  fresh(): S3Bucket;
}

/** useRgw with one bucket for the enclosing describe, created in before; each test takes its own prefix of it. */
export function useRgwBucket(opts: RgwOptions = {}): RgwBucket {
  const rgw = useRgw(opts);
  let root: S3Bucket | undefined;
  let n = 0;
  before(async () => {
    root = rgw().bucket(await rgw().createBucket());
  });
  const bucket = (): S3Bucket => {
    if (!root) throw new Error('RGW bucket not created (useRgwBucket must be called in a describe, and used in tests or hooks)');
    return root;
  };
  return { rgw, root: bucket, fresh: () => bucket().under(`t${++n}/`) };
}

/** SIGKILL of each daemon whose pid file is in dir and whose command line names dir (exit hook: synchronous). */
function killDaemonsNow(dir: string): void {
  for (const name of DAEMONS) {
    try {
      const pid = Number(readFileSync(path.join(dir, 'run', `${name}.pid`), 'utf8').trim());
      if (pid > 1 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
    } catch {
      // not started, or already gone
    }
  }
}

function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return out;
}

function required(vars: Record<string, string>, key: string): string {
  const v = vars[key];
  if (!v) throw new Error(`ceph-up.sh wrote no ${key}`);
  return v;
}
