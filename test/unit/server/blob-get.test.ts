import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import supertest from 'supertest';
import type { BlobHandle, PullBackend } from '../../../lib/registry/types.ts';
import { createApp } from '../../../server/app.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;

/** A backend whose only blob is a handle given by the test. */
function backendWith(handle: BlobHandle): PullBackend {
  return { getBlob: async () => handle } as unknown as PullBackend;
}

describe('blob GET of a stored file', () => {
  it('answers BLOB_UNKNOWN, without cache headers, when the file vanished after the lookup', async () => {
    const app = createApp({ pull: backendWith({ digest: DIGEST, size: 10, path: '/nonexistent/ferry/blob', open: () => Readable.from([]) }) });
    const res = await supertest(app).get(`/v2/app/blobs/${DIGEST}`);
    assert.equal(res.status, 404);
    assert.equal((res.body as { errors: Array<{ code: string }> }).errors[0]?.code, 'BLOB_UNKNOWN');
    assert.equal(res.headers['cache-control'], undefined);
    assert.equal(res.headers['docker-content-digest'], undefined);
  });

  it('answers HEAD from the handle alone, without opening the file', async () => {
    const app = createApp({ pull: backendWith({ digest: DIGEST, size: 10, path: '/nonexistent/ferry/blob', open: () => Readable.from([]) }) });
    const res = await supertest(app).head(`/v2/app/blobs/${DIGEST}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '10');
  });

  it('streams a handle without a file (a fill in progress) from open()', async () => {
    const bytes = Buffer.from('0123456789');
    const app = createApp({ pull: backendWith({ digest: DIGEST, size: 10, open: (s = 0, e = 9) => Readable.from([bytes.subarray(s, e + 1)]) }) });
    const res = await supertest(app).get(`/v2/app/blobs/${DIGEST}`).set('Range', 'bytes=2-5').buffer(true).parse((r, cb) => {
      const parts: Buffer[] = [];
      r.on('data', (c: Buffer) => parts.push(c));
      r.on('end', () => cb(null, Buffer.concat(parts)));
    });
    assert.equal(res.status, 206);
    assert.equal((res.body as Buffer).toString(), '2345');
  });
});
