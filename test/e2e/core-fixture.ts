/**
 * Shared pieces of the mirror-core end-to-end tests (ferry as a plain local registry): a mirror
 * whose access log is recorded, skopeo commands the helpers do not wrap, checks of what skopeo
 * pulled, the shipped rewrite rules without their upstreams, and loading images into dockerd.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_CONFIG_FILE } from '../../lib/config/load.ts';
import type { ConfigInput, RewriteRule } from '../../lib/config/schema.ts';
import { createLogger } from '../../lib/log/logger.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { writeSkopeoDir, type BuiltImage } from '../helpers/oci-image.ts';
import type { Dockerd } from '../helpers/dockerd.ts';
import { run, runChecked, type RunResult } from '../helpers/processes.ts';
import { skopeoCopy, skopeoEnv } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

/** One line of ferry's access log. */
export interface LoggedRequest {
  method: string;
  path: string;
  route: string;
  status: number;
  repository?: string;
}

/** ferry's access log as the requests it answered, in order. */
export class RequestLog {
  readonly entries: LoggedRequest[] = [];

  /** Where the log stands now; pass it to since() to see only what came after. */
  mark(): number {
    return this.entries.length;
  }

  since(mark: number): LoggedRequest[] {
    return this.entries.slice(mark);
  }

  /** Writable for pino: one JSON object per line. */
  sink(): Writable {
    let rest = '';
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        const lines = (rest + chunk.toString('utf8')).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) {
          const rec = JSON.parse(line) as Partial<LoggedRequest> & { msg?: string };
          if (rec.msg === 'request' && rec.method && rec.path) {
            this.entries.push({ method: rec.method, path: rec.path, route: rec.route ?? 'other', status: rec.status ?? 0, ...(rec.repository ? { repository: rec.repository } : {}) });
          }
        }
        done();
      },
    });
  }
}

/** Blob uploads among requests: POST sessions (mounts excluded), PATCH, PUT and monolithic POSTs. */
export function uploadRequests(reqs: LoggedRequest[]): LoggedRequest[] {
  return reqs.filter((r) => (r.route === 'upload-start' && !r.path.includes('mount=')) || r.route === 'upload');
}

/** POSTs with ?mount= that ferry answered 201 Created (a cross-repository mount done). */
export function mountsDone(reqs: LoggedRequest[]): LoggedRequest[] {
  return reqs.filter((r) => r.method === 'POST' && r.route === 'upload-start' && r.path.includes('mount=') && r.status === 201);
}

export interface CoreMirror extends TestMirror {
  log: RequestLog;
}

/** A test mirror whose access log is recorded; on `dataDir`, a restart over existing content. */
export async function startCoreMirror(config: Omit<ConfigInput, 'listen'> = {}, dataDir?: string): Promise<CoreMirror> {
  const log = new RequestLog();
  const logger = createLogger({ level: 'info', format: 'json' }, log.sink());
  const mirror = await startTestMirror(config, { logger }, dataDir);
  return Object.assign(mirror, { log });
}

/**
 * The rewrite rules of the shipped registry.config.json with every upstream taken away, so
 * nothing leaves 127.0.0.1: rules keep their `local`, and rules that only forwarded go.
 */
export async function shippedRulesWithoutUpstreams(): Promise<Omit<ConfigInput, 'listen'>> {
  const shipped = JSON.parse(await readFile(DEFAULT_CONFIG_FILE, 'utf8')) as ConfigInput & { $schema?: string };
  const rewrite: RewriteRule[] = [];
  for (const rule of shipped.rewrite ?? []) {
    if (rule.local === undefined) continue;
    const { upstream: _upstream, upstreamName: _upstreamName, ...kept } = rule;
    rewrite.push(kept);
  }
  return { ...(shipped.cache ? { cache: shipped.cache } : {}), rewrite };
}

// --- skopeo --------------------------------------------------------------------------------

/** `skopeo --insecure-policy ARGS` (the caller adds --tls-verify=false where it applies); never throws. */
export function skopeoRaw(args: string[]): Promise<RunResult> {
  return run('skopeo', ['--insecure-policy', ...args], { env: skopeoEnv(), timeoutMs: 60_000 });
}

export async function skopeoDelete(ref: string): Promise<void> {
  await runChecked('skopeo', ['--insecure-policy', 'delete', '--tls-verify=false', ref], { env: skopeoEnv(), timeoutMs: 60_000 });
}

export async function skopeoListTags(ref: string): Promise<string[]> {
  const out = await runChecked('skopeo', ['--insecure-policy', 'list-tags', '--tls-verify=false', ref], { env: skopeoEnv(), timeoutMs: 60_000 });
  return (JSON.parse(out) as { Tags: string[] }).Tags;
}

interface ManifestJson {
  mediaType?: string;
  config?: { digest: string; size: number };
  layers?: Array<{ digest: string; size: number }>;
  manifests?: Array<{ digest: string; size: number }>;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function checkedFile(dir: string, digest: string, size: number, name = digest.slice('sha256:'.length)): Promise<Buffer> {
  const bytes = await readFile(path.join(dir, name));
  if (bytes.length !== size) throw new Error(`${name}: ${bytes.length} bytes, the manifest says ${size}`);
  if (sha256(bytes) !== digest) throw new Error(`${name}: content does not match ${digest}`);
  return bytes;
}

export interface PulledDir {
  /** manifest.json exactly as pulled. */
  manifest: Buffer;
  mediaType: string | undefined;
  /** Digests of every blob and child manifest found and verified. */
  verified: string[];
}

/**
 * Checks a skopeo `dir:` pull: every blob (and, for an index pulled with --all, every child
 * manifest and its blobs) is there with the size and digest the manifests say.
 */
export async function verifyPulledDir(dir: string): Promise<PulledDir> {
  const manifest = await readFile(path.join(dir, 'manifest.json'));
  const top = JSON.parse(manifest.toString('utf8')) as ManifestJson;
  const verified: string[] = [];
  const checkImage = async (m: ManifestJson): Promise<void> => {
    for (const d of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) {
      await checkedFile(dir, d.digest, d.size);
      verified.push(d.digest);
    }
  };
  if (top.manifests) {
    for (const child of top.manifests) {
      const bytes = await checkedFile(dir, child.digest, child.size, `${child.digest.slice('sha256:'.length)}.manifest.json`);
      verified.push(child.digest);
      await checkImage(JSON.parse(bytes.toString('utf8')) as ManifestJson);
    }
  } else {
    await checkImage(top);
  }
  return { manifest, mediaType: top.mediaType, verified };
}

/** Pulls `docker://ref` into a fresh temp `dir:` and verifies it; the dir is removed afterwards. */
export async function pullAndVerify(ref: string, opts: { all?: boolean } = {}): Promise<PulledDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-core-pull-'));
  try {
    await skopeoCopy(`docker://${ref}`, `dir:${dir}`, opts);
    return await verifyPulledDir(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** GET of a manifest from ferry, accepting every manifest type. */
export async function fetchManifest(url: string, name: string, reference: string): Promise<{ status: number; digest: string | null; contentType: string | null; bytes: Buffer }> {
  const res = await fetch(`${url}/v2/${name}/manifests/${reference}`, {
    headers: { accept: [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerManifestList].join(', ') },
  });
  return { status: res.status, digest: res.headers.get('docker-content-digest'), contentType: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) };
}

// --- dockerd -------------------------------------------------------------------------------

/**
 * Loads a built image into dockerd as `ref` through a docker-archive, with no registry involved:
 * dockerd then holds layers it never pulled, so a push uploads every one of them.
 */
export async function loadIntoDockerd(dockerd: Dockerd, image: BuiltImage, ref: string): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-core-load-'));
  try {
    await writeSkopeoDir(path.join(dir, 'src'), image);
    const archive = path.join(dir, 'image.tar');
    await skopeoCopy(`dir:${path.join(dir, 'src')}`, `docker-archive:${archive}:${ref}`);
    await dockerd.docker(['load', '-i', archive]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The digest `docker push` reports ("TAG: digest: sha256:... size: N"). */
export function pushedDigest(output: string): string {
  const m = /digest: (sha256:[a-f0-9]{64})/.exec(output);
  if (!m?.[1]) throw new Error(`no digest in docker push output:\n${output}`);
  return m[1];
}

/** Removes every image dockerd holds, so the next pull must fetch everything again. */
export async function removeAllImages(dockerd: Dockerd): Promise<void> {
  await dockerd.docker(['image', 'prune', '--all', '--force']);
  const left = (await dockerd.docker(['images', '--quiet'])).trim();
  if (left !== '') throw new Error(`dockerd still holds images: ${left}`);
}
