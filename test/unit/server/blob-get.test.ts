import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import supertest from 'supertest';
import { LocalRegistry } from '../../../lib/registry/local.ts';
import type { BlobHandle, PullBackend } from '../../../lib/registry/types.ts';
import { openStore } from '../../../lib/storage/store.ts';
import { createApp } from '../../../server/app.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;

/** A backend whose only blob is a handle given by the test. */
function backendWith(handle: BlobHandle): PullBackend {
  return { getBlob: async () => handle } as unknown as PullBackend;
}

describe('blob GET of a stored file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-blob-get-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('answers BLOB_UNKNOWN, without cache headers, when the file vanished after the lookup', async () => {
    const store = await openStore(dir);
    const digest = await store.blobs.putBytes(Buffer.from('0123456789'));
    await store.repositories.linkBlob('app', digest);
    const handle = await new LocalRegistry(store).getBlob('app', digest);
    await store.blobs.delete(digest);
    const app = createApp({ pull: backendWith(handle) });
    const res = await supertest(app).get(`/v2/app/blobs/${digest}`);
    assert.equal(res.status, 404);
    assert.equal((res.body as { errors: Array<{ code: string }> }).errors[0]?.code, 'BLOB_UNKNOWN');
    assert.equal(res.headers['cache-control'], undefined);
    assert.equal(res.headers['docker-content-digest'], undefined);
  });

  it('answers HEAD from the handle alone, without opening the blob', async () => {
    const app = createApp({ pull: backendWith({ digest: DIGEST, size: 10, open: () => assert.fail('HEAD opened the blob') }) });
    const res = await supertest(app).head(`/v2/app/blobs/${DIGEST}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '10');
  });

  it('streams a handle without a fast path (a fill in progress) from open()', async () => {
    const bytes = Buffer.from('0123456789');
    const app = createApp({ pull: backendWith({ digest: DIGEST, size: 10, open: async (r = { start: 0, end: 9 }) => Readable.from([bytes.subarray(r.start, r.end + 1)]) }) });
    const res = await supertest(app).get(`/v2/app/blobs/${DIGEST}`).set('Range', 'bytes=2-5').buffer(true).parse((r, cb) => {
      const parts: Buffer[] = [];
      r.on('data', (c: Buffer) => parts.push(c));
      r.on('end', () => cb(null, Buffer.concat(parts)));
    });
    assert.equal(res.status, 206);
    assert.equal((res.body as Buffer).toString(), '2345');
  });

  it('sends a stored blob by the storage fast path, a range exactly', async () => {
    const store = await openStore(dir);
    const bytes = Buffer.alloc(3 << 20);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + (i >> 9)) & 0xff;
    const digest = await store.blobs.putBytes(bytes);
    await store.repositories.linkBlob('app', digest);
    const handle = await new LocalRegistry(store).getBlob('app', digest);
    let fast = 0;
    const app = createApp({
      pull: backendWith({
        ...handle,
        open: async (r) => {
          const s = await handle.open(r);
          assert.ok(s.writeTo, 'the fs backend offers writeTo');
          const writeTo = s.writeTo.bind(s);
          s.writeTo = (sink) => { fast++; return writeTo(sink); };
          return s;
        },
      }),
    });
    const get = (range?: string): Promise<supertest.Response> => {
      const req = supertest(app).get(`/v2/app/blobs/${digest}`);
      if (range) void req.set('Range', range);
      return req.buffer(true).parse((r, cb) => {
        const parts: Buffer[] = [];
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('end', () => cb(null, Buffer.concat(parts)));
      });
    };
    const whole = await get();
    assert.equal(whole.status, 200);
    assert.ok((whole.body as Buffer).equals(bytes));
    const part = await get('bytes=1000000-2500000');
    assert.equal(part.status, 206);
    assert.ok((part.body as Buffer).equals(bytes.subarray(1_000_000, 2_500_001)));
    assert.equal(fast, 2);
  });
});
