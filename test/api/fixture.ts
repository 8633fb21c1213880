/**
 * The API tests' fixture: a mirror app over a fresh store in a temp dir, listening on
 * 127.0.0.1:0, and helpers that push blobs and manifests through the v2 API itself.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import supertest from 'supertest';
import { digestOf } from '../../lib/oci/digest.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { LocalRegistry } from '../../lib/registry/local.ts';
import { openStore, type FsStorage } from '../../lib/storage/store.ts';
import { createApp } from '../../server/app.ts';

export type Api = ReturnType<typeof supertest>;

export interface Fixture {
  dir: string;
  store: FsStorage;
  backend: LocalRegistry;
  server: Server;
  /** supertest bound to the listening server. */
  api: Api;
  /** A new store, registry, app and server on the same data dir (a restart); this one stops. */
  reopen(): Promise<Fixture>;
  /** Stops the server and removes the data dir. */
  close(): Promise<void>;
}

export async function createFixture(dir?: string): Promise<Fixture> {
  const root = dir ?? (await mkdtemp(join(tmpdir(), 'ferry-api-')));
  const store = await openStore(root);
  const backend = new LocalRegistry(store);
  const server = createServer(createApp({ pull: backend, push: backend }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return {
    dir: root,
    store,
    backend,
    server,
    api: supertest(server),
    async reopen() {
      await stop();
      return createFixture(root);
    },
    async close() {
      await stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

// --- content -------------------------------------------------------------------------------

export interface Blob {
  bytes: Buffer;
  digest: string;
  size: number;
}

export function blob(content: string | Buffer): Blob {
  const bytes = typeof content === 'string' ? Buffer.from(content) : content;
  return { bytes, digest: digestOf(bytes), size: bytes.length };
}

/** The OCI empty descriptor's content: `{}`. */
export const EMPTY_CONFIG = blob('{}');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  [key: string]: unknown;
}

export function descriptor(b: Blob, mediaType: string, extra: Record<string, unknown> = {}): Descriptor {
  return { mediaType, digest: b.digest, size: b.size, ...extra };
}

export function imageManifest(config: Descriptor, layers: Descriptor[], extra: Record<string, unknown> = {}, mediaType: string = MEDIA.ociManifest): Record<string, unknown> {
  return { schemaVersion: 2, mediaType, config, layers, ...extra };
}

export function indexManifest(manifests: Descriptor[], extra: Record<string, unknown> = {}, mediaType: string = MEDIA.ociIndex): Record<string, unknown> {
  return { schemaVersion: 2, mediaType, manifests, ...extra };
}

/** Deterministic pseudo-random bytes (xorshift), so big test blobs need no entropy and compress badly. */
export function pseudoRandom(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (; i < size; i++) out[i] = i & 0xff;
  return out;
}

// --- pushing through the API ---------------------------------------------------------------

/** Monolithic POST ?digest=; asserts 201. */
export async function pushBlob(api: Api, name: string, content: string | Buffer | Blob): Promise<Blob> {
  const b = typeof content === 'string' || Buffer.isBuffer(content) ? blob(content) : content;
  const res = await api
    .post(`/v2/${name}/blobs/uploads/?digest=${b.digest}`)
    .set('Content-Type', 'application/octet-stream')
    .send(b.bytes);
  assert.equal(res.status, 201, `push blob ${b.digest}: ${res.status} ${res.text}`);
  return b;
}

export function manifestBytes(manifest: Record<string, unknown> | string | Buffer): Buffer {
  if (Buffer.isBuffer(manifest)) return manifest;
  return Buffer.from(typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
}

/** PUT /v2/<name>/manifests/<reference>, whatever the answer. */
export function putManifest(api: Api, name: string, reference: string, manifest: Record<string, unknown> | string | Buffer, contentType?: string): supertest.Test {
  const bytes = manifestBytes(manifest);
  const type = contentType ?? (typeof manifest === 'object' && !Buffer.isBuffer(manifest) && typeof manifest.mediaType === 'string' ? manifest.mediaType : MEDIA.ociManifest);
  return api.put(`/v2/${name}/manifests/${reference}`).set('Content-Type', type).serialize(asIs).send(bytes);
}

/** superagent would JSON-encode a Buffer sent as a +json type: send the bytes as they are. */
export const asIs = (body: unknown): string => body as string;

export interface Pushed {
  digest: string;
  bytes: Buffer;
  size: number;
  mediaType: string;
}

/** PUT a manifest; asserts 201 and the digest the registry answers. */
export async function pushManifest(api: Api, name: string, reference: string, manifest: Record<string, unknown> | string | Buffer, contentType?: string): Promise<Pushed> {
  const bytes = manifestBytes(manifest);
  const res = await putManifest(api, name, reference, bytes, contentType ?? mediaTypeOf(manifest));
  assert.equal(res.status, 201, `push manifest ${name}:${reference}: ${res.status} ${res.text}`);
  const digest = digestOf(bytes);
  assert.equal(res.headers['docker-content-digest'], digest);
  return { digest, bytes, size: bytes.length, mediaType: contentType ?? mediaTypeOf(manifest) };
}

function mediaTypeOf(manifest: Record<string, unknown> | string | Buffer): string {
  const parsed = Buffer.isBuffer(manifest) || typeof manifest === 'string' ? (JSON.parse(manifest.toString()) as Record<string, unknown>) : manifest;
  return typeof parsed.mediaType === 'string' ? parsed.mediaType : MEDIA.ociManifest;
}

export interface PushedImage extends Pushed {
  config: Blob;
  layers: Blob[];
  manifest: Record<string, unknown>;
}

/** A small OCI (or Docker schema 2) image: a config and one layer per content, pushed and tagged. */
export async function pushImage(api: Api, name: string, reference: string, opts: { layers?: string[]; format?: 'oci' | 'docker'; extra?: Record<string, unknown> } = {}): Promise<PushedImage> {
  const docker = opts.format === 'docker';
  const config = await pushBlob(api, name, JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, name, reference }));
  const layers: Blob[] = [];
  for (const content of opts.layers ?? [`layer of ${name}:${reference}`]) layers.push(await pushBlob(api, name, content));
  const manifest = imageManifest(
    descriptor(config, docker ? MEDIA.dockerConfig : MEDIA.ociConfig),
    layers.map((l) => descriptor(l, docker ? MEDIA.dockerLayer : MEDIA.ociLayerGzip)),
    opts.extra,
    docker ? MEDIA.dockerManifest : MEDIA.ociManifest,
  );
  const pushed = await pushManifest(api, name, reference, manifest);
  return { ...pushed, config, layers, manifest };
}

// --- assertions ----------------------------------------------------------------------------

interface ErrorBody {
  errors?: Array<{ code?: string; message?: string; detail?: unknown }>;
}

/** The spec's JSON error form with the given status and code (HEAD answers carry no body). */
export function expectError(res: { status: number; headers: Record<string, string | string[] | undefined>; body: unknown; text?: string; req?: { method?: string } }, status: number, code: string): void {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${res.text ?? ''}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  if (res.req?.method === 'HEAD') return;
  const body = (Buffer.isBuffer(res.body) ? JSON.parse(res.body.toString('utf8')) : res.body) as ErrorBody;
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `no errors array in ${res.text ?? ''}`);
  assert.equal(body.errors[0]?.code, code, `expected code ${code} in ${JSON.stringify(body)}`);
  assert.equal(typeof body.errors[0]?.message, 'string');
}

// --- raw HTTP ------------------------------------------------------------------------------

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  req: { method: string };
}

/**
 * A request sent exactly as written: no URL normalisation (dot segments, encodings), for path
 * traversal and malformed-input tests.
 */
export function raw(target: Server | number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<RawResponse> {
  const port = typeof target === 'number' ? target : portOf(target);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, text: b.toString('utf8'), req: { method } });
      });
    });
    req.end(body);
  });
}

export function portOf(server: Server): number {
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('server is not listening');
  return addr.port;
}
