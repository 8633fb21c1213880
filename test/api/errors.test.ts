import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '../../lib/oci/digest.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { createFixture, expectError, pushImage, raw, type Fixture, type PushedImage, type RawResponse } from './fixture.ts';

const HEX = 'a'.repeat(64);
const DIGEST = `sha256:${HEX}`;

/** Every failure is the spec's JSON form: {"errors":[{"code","message"}]}. */
function expectJsonErrorForm(res: RawResponse): void {
  if (res.status < 400 || res.req.method === 'HEAD' || res.body.length === 0) return;
  assert.match(String(res.headers['content-type']), /^application\/json/, `${res.status} without a JSON error body`);
  const body = JSON.parse(res.text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0);
  assert.match(String(body.errors[0]?.code), /^[A-Z_]+$/);
}

describe('api: errors', () => {
  let parent: string;
  let fx: Fixture;
  let img: PushedImage;
  const secret = `TOP-SECRET-${Math.random().toString(36).slice(2)}`;

  before(async () => {
    // The data dir sits next to a file nothing in the API may reach.
    parent = await mkdtemp(join(tmpdir(), 'ferry-errors-'));
    await writeFile(join(parent, 'secret.txt'), secret);
    fx = await createFixture(join(parent, 'data'));
    img = await pushImage(fx.api, 'err/app', 'v1');
  });
  after(async () => {
    await fx.close();
    await rm(parent, { recursive: true, force: true });
  });

  describe('NAME_INVALID', () => {
    const names = ['Upper/Case', 'a/../b', '..', 'a/..', '.hidden', '/leading', 'trailing/', 'a//b', '-dash', 'dash-', '_under', 'a___b', 'a..b', 'caf%C3%A9', 'a%00b', 'x'.repeat(256), `${'a/'.repeat(127)}ab`];
    for (const name of names) {
      const label = name.length > 30 ? `a name of ${decodeURIComponent(name).length} characters` : JSON.stringify(name);
      it(`answers NAME_INVALID (400) for ${label} on every endpoint`, async () => {
        const requests: Array<[string, string]> = [
          ['GET', `/v2/${name}/manifests/latest`],
          ['HEAD', `/v2/${name}/manifests/latest`],
          ['PUT', `/v2/${name}/manifests/latest`],
          ['DELETE', `/v2/${name}/manifests/latest`],
          ['GET', `/v2/${name}/blobs/${DIGEST}`],
          ['DELETE', `/v2/${name}/blobs/${DIGEST}`],
          ['POST', `/v2/${name}/blobs/uploads/`],
          ['GET', `/v2/${name}/blobs/uploads/${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}`],
          ['GET', `/v2/${name}/tags/list`],
          ['GET', `/v2/${name}/referrers/${DIGEST}`],
        ];
        for (const [method, path] of requests) {
          const res = await raw(fx.server, method, path, { 'Content-Type': MEDIA.ociManifest }, method === 'PUT' ? img.bytes : undefined);
          expectError(res, 400, 'NAME_INVALID');
        }
      });
    }

    it('accepts a name of 255 characters', async () => {
      const name = `${'a/'.repeat(126)}abc`;
      assert.equal(name.length, 255);
      expectError(await fx.api.get(`/v2/${name}/manifests/latest`), 404, 'MANIFEST_UNKNOWN');
    });

    it('accepts the separators of the grammar: ".", "_", "__" and dashes', async () => {
      for (const name of ['a.b', 'a_b', 'a__b', 'a---b', 'a0/b1-c2.d3__e4']) {
        expectError(await fx.api.get(`/v2/${name}/manifests/latest`), 404, 'MANIFEST_UNKNOWN');
      }
    });
  });

  describe('DIGEST_INVALID', () => {
    const digests = ['sha256:zz', `sha256:${HEX.toUpperCase()}`, `sha256:${HEX}0`, `md5:${'a'.repeat(32)}`, `sha1:${'a'.repeat(40)}`, 'sha256:', ':abc', 'sha256:../../etc', 'sha256:..%2F..%2Fetc%2Fpasswd', `sha256:${HEX.slice(2)}%2F..`, 'sha256%3A..', '%2e%2e%2f%2e%2e'];
    for (const d of digests) {
      it(`answers DIGEST_INVALID (400) for ${JSON.stringify(d)} wherever a digest is expected`, async () => {
        const requests: Array<[string, string]> = [
          ['GET', `/v2/err/app/blobs/${d}`],
          ['HEAD', `/v2/err/app/blobs/${d}`],
          ['DELETE', `/v2/err/app/blobs/${d}`],
          ['GET', `/v2/err/app/referrers/${d}`],
          ['POST', `/v2/err/app/blobs/uploads/?digest=${d}`],
        ];
        if (d.includes(':')) {
          requests.push(['GET', `/v2/err/app/manifests/${d}`], ['DELETE', `/v2/err/app/manifests/${d}`], ['PUT', `/v2/err/app/manifests/${d}`]);
        }
        for (const [method, path] of requests) {
          const res = await raw(fx.server, method, path, { 'Content-Type': MEDIA.ociManifest }, method === 'PUT' ? img.bytes : method === 'POST' ? 'x' : undefined);
          // A path segment that decodes to "../.." stays one parameter and fails as a digest.
          expectError(res, 400, 'DIGEST_INVALID');
        }
      });
    }
  });

  describe('UNSUPPORTED', () => {
    const uuid = '00000000-0000-0000-0000-000000000000';
    const table: Array<[string, string, string[]]> = [
      ['/v2/', 'GET, HEAD', ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']],
      ['/v2/_catalog', 'GET, HEAD', ['POST', 'PUT', 'DELETE']],
      ['/v2/err/app/tags/list', 'GET, HEAD', ['POST', 'PUT', 'DELETE', 'PATCH']],
      ['/v2/err/app/manifests/v1', 'GET, HEAD, PUT, DELETE', ['POST', 'PATCH', 'OPTIONS']],
      [`/v2/err/app/blobs/${DIGEST}`, 'GET, HEAD, DELETE', ['POST', 'PUT', 'PATCH']],
      ['/v2/err/app/blobs/uploads/', 'POST', ['GET', 'PUT', 'PATCH', 'DELETE']],
      [`/v2/err/app/blobs/uploads/${uuid}`, 'GET, HEAD, PATCH, PUT, DELETE', ['POST']],
      [`/v2/err/app/referrers/${DIGEST}`, 'GET, HEAD', ['POST', 'PUT', 'DELETE']],
    ];
    for (const [path, allow, methods] of table) {
      it(`answers UNSUPPORTED (405) with Allow: ${allow} for ${methods.join(', ')} on ${path.replace(DIGEST, '<digest>')}`, async () => {
        for (const method of methods) {
          const res = await raw(fx.server, method, path);
          expectError(res, 405, 'UNSUPPORTED');
          assert.equal(res.headers.allow, allow, `${method} ${path}`);
        }
      });
    }
  });

  describe('the JSON error form', () => {
    it('carries code, message and detail for each error code a client can meet', async () => {
      const cases: Array<[string, string, number, string, (Buffer | string)?]> = [
        ['GET', `/v2/err/app/blobs/${DIGEST}`, 404, 'BLOB_UNKNOWN'],
        ['GET', '/v2/err/app/blobs/uploads/00000000-0000-0000-0000-000000000000', 404, 'BLOB_UPLOAD_UNKNOWN'],
        ['GET', '/v2/err/app/manifests/nope', 404, 'MANIFEST_UNKNOWN'],
        ['GET', '/v2/err/nope/tags/list', 404, 'NAME_UNKNOWN'],
        ['GET', '/v2/err/app/tags/list?n=x', 400, 'PAGINATION_NUMBER_INVALID'],
        ['PUT', '/v2/err/app/manifests/bad', 400, 'MANIFEST_INVALID', '{'],
        ['GET', '/v2/err/app/manifests/sha256:zz', 400, 'DIGEST_INVALID'],
        ['GET', '/v2/ERR/app/manifests/v1', 400, 'NAME_INVALID'],
        ['POST', '/v2/', 405, 'UNSUPPORTED'],
      ];
      for (const [method, path, status, code, body] of cases) {
        const res = await raw(fx.server, method, path, { 'Content-Type': MEDIA.ociManifest }, body);
        expectError(res, status, code);
        const parsed = JSON.parse(res.text) as { errors: Array<{ code: string; message: string }> };
        assert.equal(parsed.errors.length, 1);
        assert.ok(parsed.errors[0]!.message.length > 0);
        assert.equal(res.headers['content-length'], String(res.body.length));
      }
    });

    it('answers BLOB_UPLOAD_INVALID and SIZE_INVALID in the same form', async () => {
      const start = await fx.api.post('/v2/err/app/blobs/uploads/');
      const res = await raw(fx.server, 'PATCH', start.headers.location as string, { 'Content-Range': '0-9', 'Content-Length': '3' }, 'abc');
      expectError(res, 400, 'SIZE_INVALID');
    });
  });

  describe('bad input is never a 500', () => {
    const uuid = '00000000-0000-0000-0000-000000000000';
    const deep = Buffer.from(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    const table: Array<[string, string, Record<string, string>?, (Buffer | string)?]> = [
      ['GET', '/v2/%'],
      ['GET', '/v2/%zz/manifests/latest'],
      ['GET', '/v2/a/manifests/%'],
      ['GET', '/v2/a/manifests/%00'],
      ['GET', '/v2/a/manifests/%ff%fe'],
      ['GET', '/v2/a%00b/manifests/latest'],
      ['GET', '/v2/../../etc/passwd'],
      ['GET', '/v2/a/../../manifests/latest'],
      ['GET', '/v2/%2e%2e/%2e%2e/etc/manifests/passwd'],
      ['GET', '/v2/a/blobs/sha256%3A' + HEX],
      ['GET', `/v2/a/blobs/${DIGEST}%00`],
      ['GET', `/v2/a/blobs/${DIGEST}/extra`],
      ['GET', '/v2/a/blobs/'],
      ['GET', '/v2/a/manifests/'],
      ['GET', '/v2//manifests/x'],
      ['GET', '/v2/a//b/tags/list'],
      ['GET', '/v2/a/tags/list?n=%'],
      ['GET', '/v2/a/tags/list?last=%ff%00'],
      ['GET', '/v2/_catalog?n=1&last=%2e%2e%2f'],
      ['GET', '/v2/_catalog?n[]=1'],
      ['GET', `/v2/a/referrers/${DIGEST}?artifactType=%`],
      ['GET', `/v2/a/referrers/${DIGEST}?artifactType=a&artifactType=b`],
      ['GET', `/v2/${'a'.repeat(5000)}/manifests/latest`],
      ['GET', `/v2/a/manifests/${'a'.repeat(5000)}`],
      ['GET', `/v2/err/app/blobs/${DIGEST}`, { Range: 'bytes=99999999999999999999-' }],
      ['GET', `/v2/err/app/blobs/${DIGEST}`, { Range: `bytes=${'0-1,'.repeat(2000)}0-1` }],
      ['GET', '/v2/err/app/manifests/v1', { Accept: '*/*;q=x, garbage,,,' }],
      ['GET', '/v2/err/app/manifests/v1', { 'If-None-Match': '*' }],
      ['GET', '/v2/', { 'X-Request-Id': '../../../etc/passwd' }],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociManifest }, deep],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociManifest }, '{"schemaVersion":2,"config":null,"layers":null}'],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociManifest }, '{"__proto__":{"schemaVersion":2},"constructor":{"prototype":{}}}'],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociManifest }, '{"schemaVersion":2,"config":{"mediaType":"x","digest":"' + DIGEST + '","size":1e308},"layers":[]}'],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociManifest }, '{"schemaVersion":2,"config":{"mediaType":"x","digest":"' + DIGEST + '","size":1},"layers":[],"annotations":{"a":1}}'],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociManifest }, '{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"' + DIGEST + '","size":1,"platform":"linux"}]}'],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociIndex }, '{"schemaVersion":2,"manifests":"none"}'],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': ';;;=' }, Buffer.from([0xff, 0xfe, 0x7b, 0x7d])],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociManifest }, 'null'],
      ['PUT', '/v2/a/manifests/latest', { 'Content-Type': MEDIA.ociManifest }, '{"schemaVersion":"2"}'],
      ['PUT', '/v2/a/manifests/latest', {}, ''],
      ['PATCH', `/v2/a/blobs/uploads/${uuid}`, { 'Content-Range': 'bytes 99999999999999999999-99999999999999999999' }, 'x'],
      ['PATCH', `/v2/a/blobs/uploads/${uuid}`, { 'Content-Range': '0-0', 'Content-Length': '1' }, 'x'],
      ['PUT', `/v2/a/blobs/uploads/${uuid}?digest=${DIGEST}&digest=${DIGEST}`],
      ['PUT', `/v2/a/blobs/uploads/${uuid}?digest=`],
      ['POST', `/v2/a/blobs/uploads/?digest=${digestOf('')}`, { 'Content-Length': '0' }],
      ['POST', `/v2/a/blobs/uploads/?digest=${DIGEST}`, { 'Content-Length': '4' }, 'abcd'],
      ['POST', '/v2/a/blobs/uploads/?mount=&from='],
      ['POST', `/v2/a/blobs/uploads/?mount=${DIGEST}&from=../../..`],
      ['POST', `/v2/a/blobs/uploads/?mount=${DIGEST}&mount=${DIGEST}&from=b`],
      ['POST', `/v2/a/blobs/uploads/?digest=${DIGEST}&digest=x`],
      ['DELETE', `/v2/a/blobs/uploads/${uuid}`],
      ['OPTIONS', '*'],
      ['TRACE', '/v2/'],
      ['GET', '/v2/err/app/blobs/uploads/..%2F..%2F..%2Fsecret.txt'],
    ];
    for (const [method, path, headers, body] of table) {
      const label = `${method} ${path.length > 60 ? `${path.slice(0, 57)}…` : path}${headers ? ` ${JSON.stringify(headers).slice(0, 60)}` : ''}${body ? ` with a ${Buffer.byteLength(body)}-byte body` : ''}`;
      it(`answers below 500: ${label}`, async () => {
        const res = await raw(fx.server, method, path, headers, body);
        assert.ok(res.status < 500 && res.status >= 200, `${label}: ${res.status} ${res.text.slice(0, 300)}`);
        expectJsonErrorForm(res);
      });
    }
  });

  describe('path traversal', () => {
    const attempts: Array<[string, string, (Buffer | string)?, number?]> = [
      ['GET', '/v2/..%2Fsecret.txt/manifests/latest'],
      ['GET', '/v2/%2e%2e%2f%2e%2e%2fsecret.txt/tags/list'],
      ['GET', '/v2/err/app/blobs/..%2F..%2Fsecret.txt'],
      ['GET', '/v2/err/app/blobs/sha256:..%2F..%2F..%2Fsecret.txt'],
      ['GET', '/v2/err/app/manifests/..%2F..%2F..%2Fsecret.txt'],
      ['GET', '/v2/err/app/blobs/uploads/..%2F..%2Fsecret.txt'],
      ['GET', '/v2/err/app/referrers/..%2F..%2Fsecret.txt'],
      ['GET', '/v2/err/app/../../../secret.txt'],
      ['GET', '/v2/err/app/blobs/%2E%2E%5C%2E%2E%5Csecret.txt'],
      ['PUT', '/v2/..%2F..%2Fevil/manifests/latest', '{}'],
      ['PUT', '/v2/err/app/manifests/..%2F..%2F..%2F..%2Fevil', '{}'],
      ['POST', '/v2/..%2Fevil/blobs/uploads/'],
      // A mount it cannot do falls back to a fresh session in the target repository (spec).
      ['POST', '/v2/err/app/blobs/uploads/?mount=sha256:..%2F..%2Fsecret.txt&from=..%2F..', undefined, 202],
      ['PATCH', '/v2/err/app/blobs/uploads/..%2F..%2Fevil', 'evil bytes'],
      ['PUT', '/v2/err/app/blobs/uploads/..%2F..%2Fevil?digest=sha256:..%2F..%2Fevil', 'evil bytes'],
      ['DELETE', '/v2/err/app/blobs/uploads/..%2F..'],
      ['DELETE', '/v2/..%2F..%2F/manifests/latest'],
      ['DELETE', '/v2/err/app/manifests/..%2F..%2Fsecret.txt'],
    ];
    for (const [method, path, body, status] of attempts) {
      it(`reaches nothing outside the data dir: ${method} ${path}`, async () => {
        const res = await raw(fx.server, method, path, { 'Content-Type': MEDIA.ociManifest }, body);
        if (status !== undefined) assert.equal(res.status, status, res.text);
        else assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
        assert.ok(!res.text.includes(secret), 'the secret leaked');
        expectJsonErrorForm(res);
        assert.deepEqual((await readdir(parent)).sort(), ['data', 'secret.txt']);
        assert.equal(await readFile(join(parent, 'secret.txt'), 'utf8'), secret);
      });
    }

    it('has written nothing but the store layout and valid repositories under the data dir', async () => {
      assert.deepEqual((await readdir(fx.dir)).sort(), ['blobs', 'repositories', 'tmp', 'transfers', 'uploads']);
      // "a" got an empty blob and sessions from the table above; nothing else is a repository.
      assert.deepEqual((await readdir(join(fx.dir, 'repositories'))).sort(), ['a', 'err']);
      const everything = await readdir(fx.dir, { recursive: true });
      assert.deepEqual(everything.filter((p) => /evil|secret|\.\./.test(p)), []);
    });
  });
});
