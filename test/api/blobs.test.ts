import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { digestOf } from '../../lib/oci/digest.ts';
import { CRASH_HOST, peakRss, serverPid, startMirrorProcess, type MirrorProcess } from '../crash/mirror-process.ts';
import { blob, createFixture, expectError, pseudoRandom, pushBlob, raw, type Blob, type Fixture } from './fixture.ts';

const MiB = 1024 * 1024;

describe('api: blobs', () => {
  let fx: Fixture;
  let b: Blob;
  before(async () => {
    fx = await createFixture();
    b = await pushBlob(fx.api, 'blobs/app', pseudoRandom(1000, 7));
  });
  after(async () => { await fx.close(); });

  describe('GET and HEAD', () => {
    it('serves a blob with its digest, length, ETag and octet-stream type', async () => {
      const res = await raw(fx.server, 'GET', `/v2/blobs/app/blobs/${b.digest}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.equals(b.bytes));
      assert.equal(res.headers['docker-content-digest'], b.digest);
      assert.equal(res.headers['content-length'], '1000');
      assert.equal(res.headers['content-type'], 'application/octet-stream');
      assert.equal(res.headers.etag, `"${b.digest}"`);
      assert.equal(res.headers['accept-ranges'], 'bytes');
    });

    it('answers HEAD with the same headers and no body', async () => {
      const res = await raw(fx.server, 'HEAD', `/v2/blobs/app/blobs/${b.digest}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.length, 0);
      assert.equal(res.headers['docker-content-digest'], b.digest);
      assert.equal(res.headers['content-length'], '1000');
    });

    it('answers 304 to If-None-Match with the blob ETag', async () => {
      const res = await raw(fx.server, 'GET', `/v2/blobs/app/blobs/${b.digest}`, { 'If-None-Match': `"${b.digest}"` });
      assert.equal(res.status, 304);
      assert.equal(res.body.length, 0);
    });

    it('serves an empty blob', async () => {
      const empty = await pushBlob(fx.api, 'blobs/app', Buffer.alloc(0));
      const res = await raw(fx.server, 'GET', `/v2/blobs/app/blobs/${empty.digest}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], '0');
      assert.equal(res.body.length, 0);
      const ranged = await raw(fx.server, 'GET', `/v2/blobs/app/blobs/${empty.digest}`, { Range: 'bytes=0-' });
      expectError(ranged, 416, 'RANGE_INVALID');
      assert.equal(ranged.headers['content-range'], 'bytes */0');
    });

    it('answers BLOB_UNKNOWN for a digest it does not hold', async () => {
      expectError(await fx.api.get(`/v2/blobs/app/blobs/${digestOf('absent')}`), 404, 'BLOB_UNKNOWN');
      const head = await raw(fx.server, 'HEAD', `/v2/blobs/app/blobs/${digestOf('absent')}`);
      expectError(head, 404, 'BLOB_UNKNOWN');
      assert.equal(head.body.length, 0);
    });

    it('answers BLOB_UNKNOWN for a blob another repository holds', async () => {
      expectError(await fx.api.get(`/v2/blobs/other/blobs/${b.digest}`), 404, 'BLOB_UNKNOWN');
    });

    for (const digest of ['sha256:zz', `md5:${'a'.repeat(32)}`, `sha256:${'a'.repeat(63)}`, `sha256:${'A'.repeat(64)}`, `sha512:${'a'.repeat(64)}`, 'sha256', 'latest', '%2e%2e', 'sha256:..%2F..%2F..%2Fetc%2Fpasswd', 'sha256:%2e%2e']) {
      it(`answers DIGEST_INVALID (400) for the digest ${digest.length > 40 ? `${digest.slice(0, 20)}…` : digest}`, async () => {
        expectError(await raw(fx.server, 'GET', `/v2/blobs/app/blobs/${digest}`), 400, 'DIGEST_INVALID');
        expectError(await raw(fx.server, 'DELETE', `/v2/blobs/app/blobs/${digest}`), 400, 'DIGEST_INVALID');
      });
    }
  });

  describe('Range', () => {
    const get = (range: string, method = 'GET') => raw(fx.server, method, `/v2/blobs/app/blobs/${b.digest}`, { Range: range });

    it('answers a closed range with 206, Content-Range and exactly those bytes', async () => {
      const res = await get('bytes=10-19');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 10-19/1000');
      assert.equal(res.headers['content-length'], '10');
      assert.ok(res.body.equals(b.bytes.subarray(10, 20)));
      assert.equal(res.headers['docker-content-digest'], b.digest);
    });

    it('answers an open-ended range to the end of the blob', async () => {
      const res = await get('bytes=990-');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 990-999/1000');
      assert.ok(res.body.equals(b.bytes.subarray(990)));
    });

    it('answers a suffix range with the last bytes', async () => {
      const res = await get('bytes=-5');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 995-999/1000');
      assert.ok(res.body.equals(b.bytes.subarray(995)));
    });

    it('answers a suffix longer than the blob with the whole blob as a range', async () => {
      const res = await get('bytes=-5000');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 0-999/1000');
      assert.ok(res.body.equals(b.bytes));
    });

    it('clamps a range that runs past the end', async () => {
      const res = await get('bytes=500-99999');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 500-999/1000');
      assert.equal(res.body.length, 500);
    });

    it('answers a single-byte range', async () => {
      const res = await get('bytes=999-999');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 999-999/1000');
      assert.deepEqual([...res.body], [b.bytes[999]]);
    });

    it('answers HEAD with a range with 206 headers and no body', async () => {
      const res = await get('bytes=0-99', 'HEAD');
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 0-99/1000');
      assert.equal(res.headers['content-length'], '100');
      assert.equal(res.body.length, 0);
    });

    for (const range of ['bytes=1000-', 'bytes=5000-6000', 'bytes=-0']) {
      it(`answers 416 with Content-Range bytes */size for the unsatisfiable ${range}`, async () => {
        const res = await get(range);
        expectError(res, 416, 'RANGE_INVALID');
        assert.equal(res.headers['content-range'], 'bytes */1000');
      });
    }

    for (const range of ['bytes=0-1,5-6', 'items=0-5', 'bytes=abc', 'bytes=-', '']) {
      it(`ignores the Range ${JSON.stringify(range)} it does not serve and sends the whole blob`, async () => {
        const res = await get(range);
        assert.equal(res.status, 200);
        assert.ok(res.body.equals(b.bytes));
      });
    }
  });

  describe('DELETE', () => {
    it('deletes a blob from a repository (202), then answers BLOB_UNKNOWN', async () => {
      const d = await pushBlob(fx.api, 'blobs/del', 'to be deleted');
      const res = await fx.api.delete(`/v2/blobs/del/blobs/${d.digest}`);
      assert.equal(res.status, 202);
      assert.equal(res.headers['content-length'], '0');
      expectError(await fx.api.get(`/v2/blobs/del/blobs/${d.digest}`), 404, 'BLOB_UNKNOWN');
      expectError(await fx.api.head(`/v2/blobs/del/blobs/${d.digest}`), 404, 'BLOB_UNKNOWN');
      expectError(await fx.api.delete(`/v2/blobs/del/blobs/${d.digest}`), 404, 'BLOB_UNKNOWN');
    });

    it('leaves the blob to the other repositories that hold it', async () => {
      const d = await pushBlob(fx.api, 'blobs/del-a', 'shared content');
      await pushBlob(fx.api, 'blobs/del-b', 'shared content');
      assert.equal((await fx.api.delete(`/v2/blobs/del-a/blobs/${d.digest}`)).status, 202);
      const res = await raw(fx.server, 'GET', `/v2/blobs/del-b/blobs/${d.digest}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.equals(d.bytes));
    });

    it('answers BLOB_UNKNOWN when deleting a blob never pushed', async () => {
      expectError(await fx.api.delete(`/v2/blobs/app/blobs/${digestOf('never')}`), 404, 'BLOB_UNKNOWN');
    });
  });

  describe('concurrent writers', () => {
    it('lets two monolithic pushes of the same digest both succeed, with one intact blob', async () => {
      const c = blob(pseudoRandom(3 * MiB, 11));
      const [r1, r2] = await Promise.all([0, 1].map(() => fx.api.post(`/v2/blobs/race/blobs/uploads/?digest=${c.digest}`).set('Content-Type', 'application/octet-stream').send(c.bytes)));
      assert.equal(r1?.status, 201);
      assert.equal(r2?.status, 201);
      const res = await raw(fx.server, 'GET', `/v2/blobs/race/blobs/${c.digest}`);
      assert.ok(res.body.equals(c.bytes));
      assert.deepEqual(await readdir(join(fx.dir, 'tmp')), [], 'no temp file is left behind');
    });

    it('lets two upload sessions of the same digest complete at the same time', async () => {
      const c = blob(pseudoRandom(2 * MiB, 12));
      const sessions = await Promise.all(['blobs/race-a', 'blobs/race-b', 'blobs/race-a'].map((name) => fx.api.post(`/v2/${name}/blobs/uploads/`)));
      const puts = await Promise.all(sessions.map((s) => fx.api.put(`${s.headers.location}?digest=${c.digest}`).set('Content-Type', 'application/octet-stream').send(c.bytes)));
      for (const p of puts) assert.equal(p.status, 201, p.text);
      for (const name of ['blobs/race-a', 'blobs/race-b']) {
        const res = await raw(fx.server, 'GET', `/v2/${name}/blobs/${c.digest}`);
        assert.ok(res.body.equals(c.bytes));
      }
    });
  });

  describe('big blobs', function () {
    this.timeout(90_000);
    let dir: string;
    let mirror: MirrorProcess | undefined;
    // The mirror runs as its own process so its memory is measured alone, without this test's.
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ferry-big-'));
      mirror = await startMirrorProcess(dir);
    });
    after(async () => {
      await mirror?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    /** Writes a pseudo-random file in 4 MiB pieces (the test never holds it whole) and returns its digest. */
    async function bigFile(path: string, size: number, seed: number): Promise<string> {
      const hash = createHash('sha256');
      const fh = await open(path, 'w');
      try {
        for (let i = 0; i < size / (4 * MiB); i++) {
          const part = pseudoRandom(4 * MiB, seed + i);
          hash.update(part);
          await fh.write(part);
        }
      } finally {
        await fh.close();
      }
      return `sha256:${hash.digest('hex')}`;
    }

    /** Streams the file in with a monolithic POST and back out with a GET, hashing on the fly. */
    async function roundTrip(port: number, file: string, size: number, digest: string): Promise<void> {
      const name = `${CRASH_HOST}/big`;
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: `/v2/${name}/blobs/uploads/?digest=${digest}`, headers: { 'Content-Length': String(size), 'Content-Type': 'application/octet-stream' } });
        req.once('error', reject);
        req.once('response', (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        createReadStream(file).pipe(req);
      });
      assert.equal(status, 201);
      const got = await new Promise<{ status: number; digest: string; bytes: number }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'GET', path: `/v2/${name}/blobs/${digest}` });
        req.once('error', reject);
        req.once('response', (res) => {
          const h = createHash('sha256');
          let bytes = 0;
          res.on('data', (c: Buffer) => { h.update(c); bytes += c.length; });
          res.once('end', () => resolve({ status: res.statusCode ?? 0, digest: `sha256:${h.digest('hex')}`, bytes }));
        });
        req.end();
      });
      assert.equal(got.status, 200);
      assert.equal(got.bytes, size);
      assert.equal(got.digest, digest);
    }

    it('streams a 64 MiB blob in and out with flat server memory', async () => {
      const m = mirror!;
      const pid = await serverPid(m);
      // A small round trip first, so one-time costs (buffers, pools, JIT) are not counted.
      const warm = join(dir, 'warm-source');
      await roundTrip(m.port, warm, 8 * MiB, await bigFile(warm, 8 * MiB, 300));
      const file = join(dir, 'big-source');
      const digest = await bigFile(file, 64 * MiB, 100);
      const before = await peakRss(pid);
      await roundTrip(m.port, file, 64 * MiB, digest);
      const growth = ((await peakRss(pid)) - before) / MiB;
      console.log(`      64 MiB pushed and pulled: server peak RSS (VmHWM) +${growth.toFixed(1)} MiB`);
      // Holding the blob in memory anywhere in the server would cost 64 MiB or more.
      assert.ok(growth < 40, `server peak RSS grew by ${growth.toFixed(1)} MiB`);
    });
  });
});
