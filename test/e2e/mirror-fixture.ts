/** Starts a ferry mirror in-process on 127.0.0.1:random with a temp store, for end-to-end tests. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type LoadedConfig } from '../../lib/config/load.ts';
import type { ConfigInput } from '../../lib/config/schema.ts';
import { createLogger, silentLogger } from '../../lib/log/logger.ts';
import { startMirror, type MirrorDeps, type RunningMirror } from '../../server/mirror.ts';
import type { StorePaths } from '../../lib/storage/paths.ts';
import type { Storage } from '../../lib/storage/storage.ts';
import { FsStorage } from '../../lib/storage/store.ts';
import type { Rgw } from '../helpers/ceph.ts';
import type { Teardown } from './pull-through-fixture.ts';

export interface TestMirror {
  mirror: RunningMirror;
  config: LoadedConfig;
  /** 127.0.0.1:port */
  host: string;
  url: string;
  dataDir: string;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startTestMirror(config: Omit<ConfigInput, 'listen'> = {}, deps: MirrorDeps = {}, dataDir?: string): Promise<TestMirror> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'ferry-e2e-')));
  const loaded = parseConfig({ ...config, listen: '127.0.0.1:0', dataDir: dir }, join(dir, 'test.config.json'), {});
  const logger = process.env.FERRY_TEST_LOG ? createLogger({ level: process.env.FERRY_TEST_LOG, format: 'json' }) : silentLogger;
  const mirror = await startMirror(loaded, { logger, ...deps });
  return {
    mirror,
    config: loaded,
    host: mirror.address,
    url: `http://${mirror.address}`,
    dataDir: dir,
    async stop(opts = {}) {
      await mirror.close();
      if (!opts.keepData) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A mirror's config on the bucket of startTestMirrorsOnRgw: its `storage` is merged over the bucket's section. */
export type MirrorOnRgwConfig = Omit<ConfigInput, 'listen' | 'dataDir' | 'storage'> & { storage?: Partial<Extract<ConfigInput['storage'], { kind: 's3' }>> };

/**
 * Mirrors in this process on one RGW bucket, as replicas of a cluster: one per config, each with
 * its own data dir under `dir` (replica-0, ...), the RGW's keys in a credentials file there, each
 * one's stop registered in `teardown` as it starts.
 */
export async function startTestMirrorsOnRgw<const C extends readonly MirrorOnRgwConfig[]>(rgw: Rgw, opts: {
  dir: string;
  teardown: Teardown;
  configs: C;
  /** Default: a new bucket. */
  bucket?: string;
  prefix?: string;
}): Promise<{ -readonly [K in keyof C]: TestMirror }> {
  const storage = rgw.storageConfig(opts.bucket ?? (await rgw.createBucket()), {
    credentialsFile: await rgw.writeCredentialsFile(opts.dir),
    ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}),
  });
  const started = await Promise.all(opts.configs.map(async (config, i) => opts.teardown.add(
    await startTestMirror({ ...config, storage: { ...storage, ...config.storage } }, {}, join(opts.dir, `replica-${i}`)),
    (m) => m.stop(),
  )));
  return started as { -readonly [K in keyof C]: TestMirror };
}

/** The data dir layout of a service running on the filesystem store (tests that look at its files). */
export function fsPaths(store: Storage): StorePaths {
  if (!(store instanceof FsStorage)) throw new Error('this test looks at the files of the fs store; the service runs on another backend');
  return store.paths;
}
