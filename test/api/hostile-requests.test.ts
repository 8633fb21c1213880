/**
 * Requests a hostile or broken client sends, answered over a real socket (listen(), as the mirror
 * serves): stalled and dribbling bodies, slow headers, manifests over the size limit sent by a
 * client that reads only after sending, manifests nested past the depth bound.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import supertest from 'supertest';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { LocalRegistry } from '../../lib/registry/local.ts';
import { openStore } from '../../lib/storage/store.ts';
import { startSweeper } from '../../lib/storage/sweeper.ts';
import { silentLogger } from '../../lib/log/logger.ts';
import { readdir, utimes, writeFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { createApp } from '../../server/app.ts';
import { listen } from '../../server/listen.ts';
import { MAX_MANIFEST_DEPTH } from '../../lib/oci/manifest.ts';
import { blob, descriptor, expectError, imageManifest, pushBlob, pushManifest, putManifest, type Api } from './fixture.ts';

const MiB = 1024 * 1024;
// Short deadlines so each case takes about a second; the shipped defaults are 20 s and 30 s.
const HEADERS_TIMEOUT_MS = 1000;
const BODY_WINDOW_MS = 500;

describe('api: hostile requests', function () {
  this.timeout(30_000);
  let dir: string;
  let server: Server;
  let port: number;
  let api: Api;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-hostile-'));
    const local = new LocalRegistry(await openStore(dir));
    const app = createApp({
      pull: local,
      push: local,
      limits: { bodyTimeoutSeconds: BODY_WINDOW_MS / 1000, bodyMinBytesPerSecond: 1024 },
    });
    server = await listen(app, { listen: '127.0.0.1:0', headersTimeoutMs: HEADERS_TIMEOUT_MS });
    port = (server.address() as { port: number }).port;
    api = supertest(server);
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  /** A raw connection; `closed` resolves with the ms from open to close and what the server sent. */
  function open(): { socket: Socket; connected: Promise<void>; closed: Promise<{ ms: number; answer: string }> } {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.on('error', () => undefined);
    return {
      socket,
      connected: new Promise((resolve) => socket.once('connect', () => resolve())),
      closed: new Promise((resolve) => socket.once('close', () => resolve({ ms: Date.now() - started, answer: Buffer.concat(parts).toString('latin1') }))),
    };
  }

  async function startUpload(name: string): Promise<string> {
    const res = await api.post(`/v2/${name}/blobs/uploads/`);
    assert.equal(res.status, 202);
    return String(res.headers.location);
  }

  describe('slow clients are cut', () => {
    it('cuts a PATCH whose body dribbles a byte at a time, and the session stays usable', async () => {
      const location = await startUpload('slow/dribble');
      const c = open();
      await c.connected;
      c.socket.write(`PATCH ${location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n`);
      const dribble = setInterval(() => c.socket.write('x'), 100);
      const { ms, answer } = await c.closed.finally(() => clearInterval(dribble));
      assert.equal(answer, '', 'a cut body gets no answer');
      assert.ok(ms < 2.5 * BODY_WINDOW_MS + 1000, `cut after ${ms} ms`);
      // What arrived stays; the client can ask where the upload stands and go on.
      const status = await api.get(location);
      assert.equal(status.status, 204);
    });

    it('cuts a body that stalls after its first bytes', async () => {
      const c = open();
      await c.connected;
      c.socket.write(`PUT /v2/slow/stall/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: ${MEDIA.ociManifest}\r\nContent-Length: 500\r\n\r\n{"schemaVersion":`);
      const { ms } = await c.closed;
      assert.ok(ms < 2.5 * BODY_WINDOW_MS + 1000, `cut after ${ms} ms`);
    });

    it('cuts headers that do not complete within the headers timeout', async () => {
      const c = open();
      await c.connected;
      c.socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
      const dribble = setInterval(() => c.socket.write('X-Slow: y\r\n'), 100);
      const { ms } = await c.closed.finally(() => clearInterval(dribble));
      assert.ok(ms >= HEADERS_TIMEOUT_MS - 50 && ms < HEADERS_TIMEOUT_MS + 1500, `cut after ${ms} ms`);
    });

    it('lets a body at a steady rate through', async () => {
      const b = blob(Buffer.alloc(64 * 1024, 7));
      const location = await startUpload('slow/steady');
      const req = api.patch(location).set('Content-Type', 'application/octet-stream');
      // 64 KiB over ~1.6 windows: 4 KiB every 50 ms is 80 KiB/s, far above the minimum.
      for (let i = 0; i < 16; i++) {
        req.write(b.bytes.subarray(i * 4096, (i + 1) * 4096));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const res = await req;
      assert.equal(res.status, 202);
      assert.equal(res.headers.range, `0-${b.size - 1}`);
    });
  });

  describe('a manifest over the size limit', () => {
    /**
     * A chunked PUT of `total` bytes written in full before reading (like a client that sends,
     * then reads); resolves with the answer's status line and how much was written before it came.
     */
    async function sendThenRead(total: number): Promise<{ status: string; sentBeforeAnswer: number; ms: number }> {
      const started = Date.now();
      const c = open();
      await c.connected;
      let sent = 0;
      let sentBeforeAnswer = -1;
      c.socket.once('data', () => { sentBeforeAnswer = sent; });
      c.socket.write(`PUT /v2/big/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: ${MEDIA.ociManifest}\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = Buffer.alloc(MiB, 0x20);
      const framed = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
      while (sent < total && !c.socket.destroyed) {
        sent += chunk.length;
        if (!c.socket.write(framed)) await new Promise((resolve) => c.socket.once('drain', resolve));
      }
      c.socket.end('0\r\n\r\n');
      const { answer } = await c.closed;
      return { status: answer.split('\r\n')[0] ?? '', sentBeforeAnswer, ms: Date.now() - started };
    }

    it('answers 413 to a client that sends 96 MiB before it reads', async () => {
      const r = await sendThenRead(96 * MiB);
      assert.equal(r.status, 'HTTP/1.1 413 Payload Too Large');
      assert.ok(r.ms < 10_000, `answered after ${r.ms} ms`);
    });

    it('answers 413 as soon as the limit is passed, before the client is done sending', async () => {
      const r = await sendThenRead(32 * MiB);
      assert.equal(r.status, 'HTTP/1.1 413 Payload Too Large');
      assert.ok(r.sentBeforeAnswer >= 0 && r.sentBeforeAnswer < 16 * MiB, `answer came after ${r.sentBeforeAnswer} bytes`);
    });

    it('answers 413 to a declared length over the limit without reading the body', async () => {
      const c = open();
      await c.connected;
      c.socket.write(`PUT /v2/big/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: ${MEDIA.ociManifest}\r\nContent-Length: ${96 * MiB}\r\n\r\n`);
      const answer = await new Promise<string>((resolve) => c.socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
      assert.match(answer, /^HTTP\/1.1 413 /);
      assert.match(answer, /"SIZE_INVALID"/);
      c.socket.destroy();
    });
  });

  describe('a manifest nested too deep', () => {
    let cfg: ReturnType<typeof blob>;
    before(async () => { cfg = await pushBlob(api, 'deep/app', '{"os":"linux","deep":true}'); });

    /** An image manifest whose field x nests arrays so the whole document is `depth` deep. */
    function nested(depth: number): Buffer {
      const m = JSON.stringify(imageManifest(descriptor(cfg, MEDIA.ociConfig), [], { x: 0 }));
      const arrays = depth - 1; // the manifest object itself is the first level
      return Buffer.from(m.replace('"x":0', `"x":${'['.repeat(arrays)}${']'.repeat(arrays)}`));
    }

    it('refuses a key nested 1,000,000 deep with MANIFEST_INVALID', async () => {
      expectError(await putManifest(api, 'deep/app', 'million', nested(1_000_000), MEDIA.ociManifest), 400, 'MANIFEST_INVALID');
      expectError(await api.get('/v2/deep/app/manifests/million'), 404, 'MANIFEST_UNKNOWN');
    });

    it('refuses a manifest as soon as what arrived nests too deep, not once the body is whole', async () => {
      // The first bytes nest past the bound, the rest never comes: read whole before the check, the
      // body would get no answer (the stalled body is cut by the body deadline).
      const c = open();
      await c.connected;
      const head = `{"schemaVersion":2,"x":${'['.repeat(MAX_MANIFEST_DEPTH)}`;
      c.socket.write(`PUT /v2/deep/app/manifests/arriving HTTP/1.1\r\nHost: x\r\nContent-Type: ${MEDIA.ociManifest}\r\nContent-Length: ${2 * MiB}\r\n\r\n${head}`);
      const answer = await new Promise<string>((resolve) => {
        c.socket.once('data', (d: Buffer) => resolve(d.toString('latin1')));
        c.socket.once('close', () => resolve(''));
      });
      c.socket.destroy();
      assert.match(answer, /^HTTP\/1.1 400 /);
      assert.match(answer, /"MANIFEST_INVALID"/);
    });

    it(`accepts ${MAX_MANIFEST_DEPTH} levels and refuses ${MAX_MANIFEST_DEPTH + 1}`, async () => {
      await pushManifest(api, 'deep/app', 'at-bound', nested(MAX_MANIFEST_DEPTH), MEDIA.ociManifest);
      expectError(await putManifest(api, 'deep/app', 'past-bound', nested(MAX_MANIFEST_DEPTH + 1), MEDIA.ociManifest), 400, 'MANIFEST_INVALID');
    });
  });

  describe('open upload sessions', () => {
    const limits = { perClient: 5, perRepository: 3 };
    let sdir: string;
    let sserver: Server;
    let sapi: Api;
    before(async () => {
      sdir = await mkdtemp(join(tmpdir(), 'ferry-sessions-'));
      const slocal = new LocalRegistry(await openStore(sdir, { uploadLimits: limits }));
      sserver = await listen(createApp({ pull: slocal, push: slocal }), { listen: '127.0.0.1:0' });
      sapi = supertest(sserver);
    });
    after(async () => {
      sserver.closeAllConnections();
      await new Promise((resolve) => sserver.close(resolve));
      await rm(sdir, { recursive: true, force: true });
    });

    it('bounds them per repository and per client with 429 TOOMANYREQUESTS, freed by cancel', async () => {
      const a: string[] = [];
      for (let i = 0; i < limits.perRepository; i++) {
        const res = await sapi.post('/v2/flood/a/blobs/uploads/');
        assert.equal(res.status, 202);
        a.push(String(res.headers.location));
      }
      expectError(await sapi.post('/v2/flood/a/blobs/uploads/'), 429, 'TOOMANYREQUESTS');
      // Another repository still has room, until this client holds perClient sessions in all.
      for (let i = a.length; i < limits.perClient; i++) assert.equal((await sapi.post('/v2/flood/b/blobs/uploads/')).status, 202);
      expectError(await sapi.post('/v2/flood/c/blobs/uploads/'), 429, 'TOOMANYREQUESTS');
      assert.equal((await sapi.delete(a[0] ?? '')).status, 204);
      assert.equal((await sapi.post('/v2/flood/a/blobs/uploads/')).status, 202);
      // A completed session is freed too.
      const b = blob('completed frees a session');
      const done = await sapi.put(`${a[1] ?? ''}?digest=${b.digest}`).set('Content-Type', 'application/octet-stream').send(b.bytes);
      assert.equal(done.status, 201);
      assert.equal((await sapi.post('/v2/flood/a/blobs/uploads/')).status, 202);
      expectError(await sapi.post('/v2/flood/a/blobs/uploads/'), 429, 'TOOMANYREQUESTS');
    });

    it('still counts the sessions a restart finds on disk', async () => {
      const store = await openStore(sdir, { uploadLimits: limits });
      assert.equal(await store.uploads.count(), limits.perClient);
      await assert.rejects(store.uploads.create('flood/d', 'address:127.0.0.1'), { code: 'TOOMANYREQUESTS' });
    });

    it('sweeps idle sessions and stale temp files while running, never one in use', async () => {
      const store = await openStore(sdir, { uploadLimits: limits });
      const uploads = join(sdir, 'uploads');
      const old = new Date(Date.now() - 3600_000);
      for (let i = 0; i < 2; i++) await store.uploads.create('flood/idle', 'address:idle');
      const inUse = (await store.uploads.create('flood/busy', 'address:busy')).uuid;
      const idle = await readdir(uploads);
      for (const uuid of idle) await utimes(join(uploads, uuid, 'data'), old, old);
      await writeFile(join(sdir, 'tmp', 'left-by-a-failed-write'), 'x');
      await utimes(join(sdir, 'tmp', 'left-by-a-failed-write'), old, old);
      await writeFile(join(sdir, 'tmp', 'being-written'), 'x');
      const fresh = await store.uploads.create('flood/e', 'address:other');
      // A session receiving a chunk whose file looks idle (a PATCH held up by the client) stays.
      const chunk = new PassThrough();
      const appending = store.uploads.append('flood/busy', inUse, chunk);
      const sweeper = startSweeper(store, { uploadIdleMs: 60_000, tmpMaxAgeMs: 60_000, logger: silentLogger });
      try {
        await sweeper.sweep();
      } finally {
        await sweeper.stop();
      }
      chunk.end('late bytes');
      assert.equal((await appending).offset, 'late bytes'.length);
      assert.deepEqual((await readdir(uploads)).sort(), [fresh.uuid, inUse].sort());
      assert.deepEqual(await readdir(join(sdir, 'tmp')), ['being-written']);
      assert.equal(await store.uploads.count(), 2);
      assert.equal(await store.uploads.count({ name: 'flood/idle' }), 0);
    });
  });
});
