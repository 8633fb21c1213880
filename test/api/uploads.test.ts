import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { digestOf } from '../../lib/oci/digest.ts';
import { waitFor } from '../helpers/processes.ts';
import { blob, createFixture, expectError, portOf, pseudoRandom, pushBlob, raw, type Api, type Fixture } from './fixture.ts';

const OCTET = 'application/octet-stream';

/** POST a session; asserts 202 and returns its Location. */
async function startSession(api: Api, name: string): Promise<string> {
  const res = await api.post(`/v2/${name}/blobs/uploads/`);
  assert.equal(res.status, 202, res.text);
  return res.headers.location as string;
}

function patch(api: Api, location: string, bytes: Buffer, contentRange?: string) {
  const req = api.patch(location).set('Content-Type', OCTET);
  if (contentRange !== undefined) req.set('Content-Range', contentRange);
  return req.send(bytes);
}

describe('api: blob uploads', () => {
  let fx: Fixture;
  beforeEach(async () => { fx = await createFixture(); });
  afterEach(async () => { await fx.close(); });

  async function expectStored(name: string, bytes: Buffer): Promise<void> {
    const res = await raw(fx.server, 'GET', `/v2/${name}/blobs/${digestOf(bytes)}`);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.equals(bytes), 'stored blob differs');
  }

  async function expectNotStored(name: string, digest: string): Promise<void> {
    expectError(await fx.api.get(`/v2/${name}/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    assert.equal(await fx.store.blobs.has(digest), false, 'the blob store must not hold it');
  }

  describe('POST', () => {
    it('opens a session: 202, Location, Docker-Upload-UUID and Range 0-0', async () => {
      const res = await fx.api.post('/v2/up/app/blobs/uploads/');
      assert.equal(res.status, 202);
      const uuid = res.headers['docker-upload-uuid'] as string;
      assert.match(uuid, /^[0-9a-f-]{36}$/);
      assert.equal(res.headers.location, `/v2/up/app/blobs/uploads/${uuid}`);
      assert.equal(res.headers.range, '0-0');
      assert.equal(res.headers['content-length'], '0');
    });

    it('opens a session without the trailing slash too', async () => {
      const res = await fx.api.post('/v2/up/app/blobs/uploads');
      assert.equal(res.status, 202);
      assert.ok(res.headers.location);
    });

    it('takes a monolithic upload with ?digest= (201, Location, Docker-Content-Digest)', async () => {
      const b = blob('monolithic content');
      const res = await fx.api.post(`/v2/up/app/blobs/uploads/?digest=${b.digest}`).set('Content-Type', OCTET).send(b.bytes);
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `/v2/up/app/blobs/${b.digest}`);
      assert.equal(res.headers['docker-content-digest'], b.digest);
      await expectStored('up/app', b.bytes);
    });

    it('answers DIGEST_INVALID for a monolithic upload whose content does not match, and stores nothing', async () => {
      const claimed = digestOf('what was promised');
      const res = await fx.api.post(`/v2/up/app/blobs/uploads/?digest=${claimed}`).set('Content-Type', OCTET).send(Buffer.from('what was sent'));
      expectError(res, 400, 'DIGEST_INVALID');
      await expectNotStored('up/app', claimed);
      await expectNotStored('up/app', digestOf('what was sent'));
      assert.deepEqual(await readdir(join(fx.dir, 'tmp')), []);
    });

    it('answers DIGEST_INVALID for a malformed ?digest=', async () => {
      expectError(await fx.api.post('/v2/up/app/blobs/uploads/?digest=sha256:zz').send(Buffer.from('x')), 400, 'DIGEST_INVALID');
    });

    it('mounts a blob from another repository (201) with ?mount=&from=', async () => {
      const b = await pushBlob(fx.api, 'up/source', 'shared layer');
      const res = await fx.api.post(`/v2/up/target/blobs/uploads/?mount=${b.digest}&from=up/source`);
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `/v2/up/target/blobs/${b.digest}`);
      assert.equal(res.headers['docker-content-digest'], b.digest);
      await expectStored('up/target', b.bytes);
    });

    it('falls back to a session (202) when the blob is not in the from repository', async () => {
      const elsewhere = await pushBlob(fx.api, 'up/elsewhere', 'not in source');
      await pushBlob(fx.api, 'up/source', 'something else');
      for (const query of [`mount=${elsewhere.digest}&from=up/source`, `mount=${digestOf('nowhere')}&from=up/source`, `mount=${elsewhere.digest}&from=up/never`]) {
        const res = await fx.api.post(`/v2/up/target/blobs/uploads/?${query}`);
        assert.equal(res.status, 202, query);
        assert.match(res.headers.location ?? '', /^\/v2\/up\/target\/blobs\/uploads\/[0-9a-f-]{36}$/);
      }
      expectError(await fx.api.head(`/v2/up/target/blobs/${elsewhere.digest}`), 404, 'BLOB_UNKNOWN');
    });

    it('falls back to a session (202) for a mount without from or with malformed arguments', async () => {
      const b = await pushBlob(fx.api, 'up/source', 'mount me');
      for (const query of [`mount=${b.digest}`, `mount=sha256:zz&from=up/source`, `mount=${b.digest}&from=Up/Source`, `mount=${b.digest}&from=..%2F..`]) {
        const res = await fx.api.post(`/v2/up/target/blobs/uploads/?${query}`);
        assert.equal(res.status, 202, query);
      }
    });

    it('answers NAME_INVALID for a session in an invalid repository', async () => {
      expectError(await fx.api.post('/v2/Up/App/blobs/uploads/'), 400, 'NAME_INVALID');
      expectError(await fx.api.post(`/v2/Up/App/blobs/uploads/?digest=${digestOf('x')}`).send(Buffer.from('x')), 400, 'NAME_INVALID');
    });
  });

  describe('PATCH, GET status and PUT', () => {
    const content = pseudoRandom(300, 3);

    it('takes chunks in both Content-Range forms and reports the Range after each', async () => {
      const loc = await startSession(fx.api, 'up/chunks');
      const r1 = await patch(fx.api, loc, content.subarray(0, 100), '0-99');
      assert.equal(r1.status, 202);
      assert.equal(r1.headers.range, '0-99');
      assert.equal(r1.headers.location, loc);
      assert.equal(r1.headers['docker-upload-uuid'], loc.split('/').pop());
      const r2 = await patch(fx.api, loc, content.subarray(100, 200), 'bytes 100-199/*');
      assert.equal(r2.status, 202);
      assert.equal(r2.headers.range, '0-199');
      const r3 = await patch(fx.api, loc, content.subarray(200, 300), 'bytes 200-299/300');
      assert.equal(r3.headers.range, '0-299');
      const done = await fx.api.put(`${loc}?digest=${digestOf(content)}`);
      assert.equal(done.status, 201);
      assert.equal(done.headers.location, `/v2/up/chunks/blobs/${digestOf(content)}`);
      assert.equal(done.headers['docker-content-digest'], digestOf(content));
      await expectStored('up/chunks', content);
    });

    it('takes a chunk without Content-Range as the next bytes (streamed PATCH)', async () => {
      const loc = await startSession(fx.api, 'up/stream');
      assert.equal((await patch(fx.api, loc, content.subarray(0, 150))).headers.range, '0-149');
      assert.equal((await patch(fx.api, loc, content.subarray(150))).headers.range, '0-299');
      assert.equal((await fx.api.put(`${loc}?digest=${digestOf(content)}`)).status, 201);
      await expectStored('up/stream', content);
    });

    it('answers GET on the session with 204, Location, Docker-Upload-UUID and Range 0-N', async () => {
      const loc = await startSession(fx.api, 'up/status');
      await patch(fx.api, loc, content.subarray(0, 42), '0-41');
      const res = await fx.api.get(loc);
      assert.equal(res.status, 204);
      assert.equal(res.headers.range, '0-41');
      assert.equal(res.headers.location, loc);
      assert.equal(res.headers['docker-upload-uuid'], loc.split('/').pop());
    });

    it('answers an out-of-order chunk with 416 and the Range it holds', async () => {
      const loc = await startSession(fx.api, 'up/order');
      await patch(fx.api, loc, content.subarray(0, 100), '0-99');
      for (const range of ['200-299', '0-99', '50-149', '101-200']) {
        const res = await patch(fx.api, loc, content.subarray(0, 100), range);
        expectError(res, 416, 'RANGE_INVALID');
        assert.equal(res.headers.range, '0-99', range);
        assert.equal(res.headers.location, loc);
      }
      assert.equal((await fx.api.get(loc)).headers.range, '0-99', 'a refused chunk changes nothing');
      await patch(fx.api, loc, content.subarray(100), '100-299');
      assert.equal((await fx.api.put(`${loc}?digest=${digestOf(content)}`)).status, 201);
      await expectStored('up/order', content);
    });

    it('answers a malformed Content-Range with 416 and the Range it holds', async () => {
      const loc = await startSession(fx.api, 'up/badrange');
      for (const range of ['garbage', '5-1', '-5', 'bytes */100']) {
        const res = await patch(fx.api, loc, content.subarray(0, 10), range);
        expectError(res, 416, 'RANGE_INVALID');
        assert.equal(res.headers.range, '0-0');
      }
    });

    it('answers a malformed Content-Range on the closing PUT with 416 and the Range it holds', async () => {
      const loc = await startSession(fx.api, 'up/badrange');
      await patch(fx.api, loc, content.subarray(0, 10), '0-9');
      const res = await fx.api.put(`${loc}?digest=${digestOf(content)}`).set('Content-Range', 'garbage').set('Content-Type', OCTET).send(content.subarray(10));
      expectError(res, 416, 'RANGE_INVALID');
      assert.equal(res.headers.range, '0-9');
      assert.equal(res.headers.location, loc);
    });

    it('answers SIZE_INVALID when Content-Range and Content-Length disagree, keeping the session as it was', async () => {
      const loc = await startSession(fx.api, 'up/size');
      const res = await patch(fx.api, loc, content.subarray(0, 100), '0-49');
      expectError(res, 400, 'SIZE_INVALID');
      assert.equal((await fx.api.get(loc)).headers.range, '0-0');
    });

    it('answers SIZE_INVALID when a streamed chunk is longer than its Content-Range, keeping the session as it was', async () => {
      const loc = await startSession(fx.api, 'up/size');
      await patch(fx.api, loc, content.subarray(0, 10), '0-9');
      const port = portOf(fx.server);
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'PATCH', path: loc, headers: { 'Content-Range': '10-19', 'Transfer-Encoding': 'chunked' } });
        req.once('error', reject);
        req.once('response', (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        req.end(content.subarray(10, 40));
      });
      assert.equal(status, 400);
      const res = await fx.api.get(loc);
      assert.equal(res.headers.range, '0-9');
      await patch(fx.api, loc, content.subarray(10), '10-299');
      assert.equal((await fx.api.put(`${loc}?digest=${digestOf(content)}`)).status, 201);
      await expectStored('up/size', content);
    });

    it('completes with the last chunk in the PUT, with or without Content-Range', async () => {
      const a = await startSession(fx.api, 'up/last');
      await patch(fx.api, a, content.subarray(0, 200), '0-199');
      const withRange = await fx.api.put(`${a}?digest=${digestOf(content)}`).set('Content-Type', OCTET).set('Content-Range', '200-299').send(content.subarray(200));
      assert.equal(withRange.status, 201);
      const other = pseudoRandom(300, 4);
      const b = await startSession(fx.api, 'up/last');
      await patch(fx.api, b, other.subarray(0, 200), '0-199');
      const without = await fx.api.put(`${b}?digest=${digestOf(other)}`).set('Content-Type', OCTET).send(other.subarray(200));
      assert.equal(without.status, 201);
      await expectStored('up/last', content);
      await expectStored('up/last', other);
    });

    it('takes the whole blob in the PUT of a fresh session (POST then PUT)', async () => {
      const loc = await startSession(fx.api, 'up/postput');
      const res = await fx.api.put(`${loc}?digest=${digestOf(content)}`).set('Content-Type', OCTET).send(content);
      assert.equal(res.status, 201);
      await expectStored('up/postput', content);
    });

    it('completes an empty blob', async () => {
      const loc = await startSession(fx.api, 'up/empty');
      const res = await fx.api.put(`${loc}?digest=${digestOf('')}`);
      assert.equal(res.status, 201);
      await expectStored('up/empty', Buffer.alloc(0));
    });

    it('verifies a sha512 digest at completion', async () => {
      const loc = await startSession(fx.api, 'up/sha512');
      await patch(fx.api, loc, content, '0-299');
      const digest = digestOf(content, 'sha512');
      const res = await fx.api.put(`${loc}?digest=${digest}`);
      assert.equal(res.status, 201);
      assert.equal(res.headers['docker-content-digest'], digest);
      const got = await raw(fx.server, 'GET', `/v2/up/sha512/blobs/${digest}`);
      assert.ok(got.body.equals(content));
    });

    it('answers DIGEST_INVALID for a wrong digest at PUT and stores nothing', async () => {
      const loc = await startSession(fx.api, 'up/wrong');
      await patch(fx.api, loc, content, '0-299');
      const wrong = digestOf('not the content');
      expectError(await fx.api.put(`${loc}?digest=${wrong}`), 400, 'DIGEST_INVALID');
      await expectNotStored('up/wrong', wrong);
      await expectNotStored('up/wrong', digestOf(content));
      // The data is kept: the same session still completes with the right digest.
      assert.equal((await fx.api.get(loc)).headers.range, '0-299');
      assert.equal((await fx.api.put(`${loc}?digest=${digestOf(content)}`)).status, 201);
    });

    it('answers DIGEST_INVALID for a PUT without ?digest= or with a malformed one', async () => {
      const loc = await startSession(fx.api, 'up/nodigest');
      await patch(fx.api, loc, content, '0-299');
      expectError(await fx.api.put(loc), 400, 'DIGEST_INVALID');
      expectError(await fx.api.put(`${loc}?digest=sha256:zz`), 400, 'DIGEST_INVALID');
      expectError(await fx.api.put(`${loc}?digest=md5:${'a'.repeat(32)}`), 400, 'DIGEST_INVALID');
      assert.equal((await fx.api.get(loc)).headers.range, '0-299');
    });

    it('closes the session once completed', async () => {
      const loc = await startSession(fx.api, 'up/closed');
      await fx.api.put(`${loc}?digest=${digestOf(content)}`).set('Content-Type', OCTET).send(content);
      expectError(await fx.api.get(loc), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await patch(fx.api, loc, content), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await fx.api.put(`${loc}?digest=${digestOf(content)}`), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    it('answers BLOB_UPLOAD_INVALID (409) to a second request on a session busy with a chunk', async () => {
      const loc = await startSession(fx.api, 'up/busy');
      const uuid = loc.split('/').pop() as string;
      const port = portOf(fx.server);
      const first = httpRequest({ host: '127.0.0.1', port, method: 'PATCH', path: loc, headers: { 'Content-Range': '0-299', 'Content-Length': '300' } });
      const firstDone = new Promise<number>((resolve, reject) => {
        first.once('error', reject);
        first.once('response', (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      });
      first.write(content.subarray(0, 100));
      await waitFor(async () => (await stat(join(fx.dir, 'uploads', uuid, 'data'))).size === 100, 5000, 'the first chunk to arrive');
      expectError(await patch(fx.api, loc, content.subarray(100), '100-299'), 409, 'BLOB_UPLOAD_INVALID');
      expectError(await fx.api.put(`${loc}?digest=${digestOf(content)}`), 409, 'BLOB_UPLOAD_INVALID');
      first.end(content.subarray(100));
      assert.equal(await firstDone, 202);
      assert.equal((await fx.api.put(`${loc}?digest=${digestOf(content)}`)).status, 201);
    });
  });

  describe('DELETE and unknown sessions', () => {
    it('cancels a session (204), then answers BLOB_UPLOAD_UNKNOWN', async () => {
      const loc = await startSession(fx.api, 'up/cancel');
      await patch(fx.api, loc, Buffer.from('some bytes'), '0-9');
      const res = await fx.api.delete(loc);
      assert.equal(res.status, 204);
      expectError(await fx.api.get(loc), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await fx.api.delete(loc), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await patch(fx.api, loc, Buffer.from('more'), '10-13'), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await fx.api.put(`${loc}?digest=${digestOf('some bytes')}`), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.deepEqual(await readdir(join(fx.dir, 'uploads')), [], 'the session data is gone');
    });

    it('answers BLOB_UPLOAD_UNKNOWN for a session of another repository', async () => {
      const loc = await startSession(fx.api, 'up/mine');
      const uuid = loc.split('/').pop() as string;
      expectError(await fx.api.get(`/v2/up/theirs/blobs/uploads/${uuid}`), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await fx.api.delete(`/v2/up/theirs/blobs/uploads/${uuid}`), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.equal((await fx.api.get(loc)).status, 204, 'the session is untouched');
    });

    for (const uuid of [randomUUID(), 'not-a-uuid', '..', '%2e%2e', '..%2F..%2Fblobs', '-'.repeat(36), 'A'.repeat(36)]) {
      it(`answers BLOB_UPLOAD_UNKNOWN for the session id ${JSON.stringify(uuid)}`, async () => {
        for (const method of ['GET', 'PATCH', 'PUT', 'DELETE']) {
          const query = method === 'PUT' ? `?digest=${digestOf('x')}` : '';
          expectError(await raw(fx.server, method, `/v2/up/app/blobs/uploads/${uuid}${query}`, { 'Content-Length': '1' }, 'x'), 404, 'BLOB_UPLOAD_UNKNOWN');
        }
      });
    }
  });

  describe('resumability', () => {
    it('continues a session after a restart (new store, registry and app on the same data dir)', async () => {
      const content = pseudoRandom(4096, 9);
      const loc = await startSession(fx.api, 'up/restart');
      await patch(fx.api, loc, content.subarray(0, 1000), '0-999');
      fx = await fx.reopen();
      const status = await fx.api.get(loc);
      assert.equal(status.status, 204);
      assert.equal(status.headers.range, '0-999');
      assert.equal((await patch(fx.api, loc, content.subarray(1000), '1000-4095')).headers.range, '0-4095');
      assert.equal((await fx.api.put(`${loc}?digest=${digestOf(content)}`)).status, 201);
      await expectStored('up/restart', content);
    });

    it('keeps what arrived of a chunk whose client went away, so the push can resume from there', async () => {
      const content = pseudoRandom(3 * 1024 * 1024, 10);
      const loc = await startSession(fx.api, 'up/abort');
      const uuid = loc.split('/').pop() as string;
      const port = portOf(fx.server);
      const req = httpRequest({ host: '127.0.0.1', port, method: 'PATCH', path: loc, headers: { 'Content-Range': `0-${content.length - 1}`, 'Content-Length': String(content.length) } });
      req.on('error', () => { /* we cut it */ });
      req.write(content.subarray(0, 1024 * 1024));
      await waitFor(async () => (await stat(join(fx.dir, 'uploads', uuid, 'data'))).size === 1024 * 1024, 5000, 'the first MiB to arrive');
      req.destroy();
      // The server notices the abort and releases the session.
      let offset = -1;
      await waitFor(async () => {
        const res = await fx.api.get(loc);
        if (res.status !== 204) return false;
        offset = Number(String(res.headers.range).split('-')[1]) + 1;
        return (await patch(fx.api, loc, content.subarray(offset), `${offset}-${content.length - 1}`)).status === 202;
      }, 5000, 'the session to accept the rest');
      assert.equal(offset, 1024 * 1024);
      assert.equal((await fx.api.put(`${loc}?digest=${digestOf(content)}`)).status, 201);
      await expectStored('up/abort', content);
    });
  });
});
