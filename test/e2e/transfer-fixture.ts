/**
 * The link rig of the transfer end-to-end tests and of bench/link.ts: a reference registry holding
 * a pushed image, a FaultProxy in front of it playing the throttled, reset-prone link, and ferry
 * either in-process (startTestMirror) or as a child process (killable with SIGKILL, its RSS
 * readable from /proc).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { ConfigInput } from '../../lib/config/schema.ts';
import { FaultProxy, type Faults } from '../fault-proxy/proxy.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { freePort, startProcess, type ManagedProcess } from '../helpers/processes.ts';
import type { SeededContent } from '../helpers/tar-gz-layer.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { REPO_ROOT, ferryArgs } from '../helpers/ferry-entry.ts';

export const MiB = 1 << 20;

export interface Upstream {
  registry: ReferenceRegistry;
  image: BuiltImage;
  repository: string;
  tag: string;
  stop(): Promise<void>;
}

/** A reference registry holding one synthetic image at `repository:tag`. */
export async function startUpstream(opts: { layers: number[]; seed: string; repository?: string; tag?: string; runnable?: boolean; content?: SeededContent }): Promise<Upstream> {
  const repository = opts.repository ?? 'test/link';
  const tag = opts.tag ?? 'v1';
  const image = await buildImage({ layers: opts.layers, seed: opts.seed, runnable: opts.runnable ?? true, format: 'docker', ...(opts.content ? { content: opts.content } : {}) });
  const registry = await startReferenceRegistry({ name: 'transfer-upstream' });
  await pushImage(image, registry.host, repository, tag);
  return { registry, image, repository, tag, stop: () => registry.stop() };
}

export async function startLink(upstreamHost: string, faults: Faults, seed = 1): Promise<FaultProxy> {
  const proxy = new FaultProxy({ target: upstreamHost, seed, faults });
  await proxy.listen();
  return proxy;
}

/** The mirror config that sends every name to `upstreamUrl` (the fault proxy). */
export function linkConfig(upstreamUrl: string, transfer: ConfigInput['transfer'], upstream: Partial<NonNullable<ConfigInput['upstreams']>[string]> = {}): Omit<ConfigInput, 'listen' | 'storage'> {
  return {
    upstreams: { up: { url: upstreamUrl, retries: 10, headersTimeoutMs: 5000, bodyTimeoutMs: 5000, ...upstream } },
    defaultUpstream: 'up',
    ...(transfer ? { transfer } : {}),
  };
}

export interface FerryProcess {
  pid: number;
  host: string;
  url: string;
  dataDir: string;
  process: ManagedProcess;
  /** SIGKILL, no goodbye; resolves once it is gone. */
  kill9(): Promise<void>;
  /** Peak resident memory so far (VmHWM), bytes. */
  peakRss(): Promise<number | undefined>;
  stop(): Promise<void>;
}

/**
 * `node --import tsx scripts/ferry.ts mirror --config <tmp>` (or, `compiled`, `node dist/scripts/ferry.js
 * mirror ...`: benchmarks, after buildFerry(); `role: 'relay'` runs `ferry relay`) on 127.0.0.1:random,
 * storing in dataDir; `env` is added to the child's environment (the S3 keys of a bucket store).
 */
export async function startFerryProcess(config: Omit<ConfigInput, 'listen' | 'dataDir'>, dataDir: string, name = 'ferry-child', opts: { compiled?: boolean; role?: 'mirror' | 'relay'; env?: Record<string, string>; nodeArgs?: string[] } = {}): Promise<FerryProcess> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-child-'));
  const configPath = join(work, 'config.json');
  await writeFile(configPath, JSON.stringify({ log: { level: process.env.FERRY_TEST_LOG ?? 'warn', format: 'json' }, ...config }));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let proc: ManagedProcess;
    try {
      proc = await startProcess({
        name,
        command: process.execPath,
        args: [...(opts.nodeArgs ?? []), ...ferryArgs(opts.compiled), opts.role ?? 'mirror', '--config', configPath],
        cwd: REPO_ROOT,
        env: { ...process.env, ...opts.env, FERRY_LISTEN: `127.0.0.1:${port}`, FERRY_DATA_DIR: dataDir },
        ready: { url: `http://127.0.0.1:${port}/v2/` },
        readyTimeoutMs: 30_000,
      });
    } catch (err) {
      if (attempt < 3 && String(err).includes('EADDRINUSE')) continue;
      await rm(work, { recursive: true, force: true });
      throw err;
    }
    const host = `127.0.0.1:${port}`;
    return {
      pid: proc.pid,
      host,
      url: `http://${host}`,
      dataDir,
      process: proc,
      async kill9() {
        process.kill(proc.pid, 'SIGKILL');
        await proc.exited;
      },
      peakRss: () => statusBytes(proc.pid, 'VmHWM'),
      async stop() {
        await proc.stop();
        await rm(work, { recursive: true, force: true });
      },
    };
  }
}

async function statusBytes(pid: number, field: string): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

export interface BlobRead {
  status: number;
  bytes: number;
  digest: string;
  /** Why the body ended early, if it did. */
  error?: string;
}

const clientAgent = new Agent({ connections: 64, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });

/** GETs a blob from a registry, hashing the body as it streams; never throws for a cut body. */
export async function readBlob(base: string, repository: string, digest: string, signal?: AbortSignal): Promise<BlobRead> {
  const res = await request(`${base}/v2/${repository}/blobs/${digest}`, { dispatcher: clientAgent, ...(signal ? { signal } : {}) });
  const h = createHash('sha256');
  let bytes = 0;
  let error: string | undefined;
  try {
    for await (const chunk of res.body) {
      h.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } catch (e) {
    error = (e as Error).message || String(e);
  }
  return { status: res.statusCode, bytes, digest: `sha256:${h.digest('hex')}`, ...(error !== undefined ? { error } : {}) };
}

/** The bytes of the distinct blobs (configs and layers) of these images: what a link should carry once. */
export function uniqueBlobBytes(images: Iterable<BuiltImage>): number {
  const unique = new Map<string, number>();
  for (const image of images) for (const b of blobsOfImage(image)) unique.set(b.digest, b.size);
  return [...unique.values()].reduce((a, b) => a + b, 0);
}

/** The image's blobs, config first, largest layer last if asked. */
export function blobsOfImage(image: BuiltImage): Array<{ digest: string; size: number }> {
  return [{ digest: image.configDigest, size: image.config.length }, ...image.layers.map((l) => ({ digest: l.digest, size: l.size }))];
}
