import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import supertest from 'supertest';
import { LocalRegistry } from '../../../lib/registry/local.ts';
import type { PullBackend } from '../../../lib/registry/types.ts';
import { openStore } from '../../../lib/storage/store.ts';
import { createApp } from '../../../server/app.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('v2 router: push routes only with a push backend', () => {
  let dir: string;
  let local: LocalRegistry;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-router-'));
    local = new LocalRegistry(await openStore(dir));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const code = (res: supertest.Response): string | undefined => (res.body as { errors?: Array<{ code: string }> }).errors?.[0]?.code;

  it('answers every push route UNSUPPORTED (405) with the methods it serves when there is no push backend', async () => {
    const api = supertest(createApp({ pull: local }));
    const cases: Array<[string, string, string]> = [
      ['put', '/v2/a/manifests/t', 'GET, HEAD'],
      ['delete', `/v2/a/manifests/${DIGEST}`, 'GET, HEAD'],
      ['delete', `/v2/a/blobs/${DIGEST}`, 'GET, HEAD'],
      ['post', '/v2/a/blobs/uploads/', ''],
      ['get', '/v2/a/blobs/uploads/0c4b2a5e-3b7e-4b8e-9a51-9d1c6a3e1f00', ''],
      ['patch', '/v2/a/blobs/uploads/0c4b2a5e-3b7e-4b8e-9a51-9d1c6a3e1f00', ''],
    ];
    for (const [method, path, allow] of cases) {
      const res = await api[method as 'get'](path).send(method === 'get' || method === 'delete' ? undefined : '{}');
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(code(res), 'UNSUPPORTED', `${method} ${path}`);
      assert.equal(res.headers.allow, allow, `${method} ${path}`);
    }
    // Pulls are served as ever.
    assert.equal((await api.get('/v2/a/manifests/t')).status, 404);
    assert.equal((await api.get('/v2/_catalog')).status, 200);
  });

  it('answers catalog and referrers UNSUPPORTED when the pull backend lists nothing', async () => {
    const pull: PullBackend = { getManifest: (n, r) => local.getManifest(n, r), getBlob: (n, d) => local.getBlob(n, d), listTags: (n, p) => local.listTags(n, p) };
    const api = supertest(createApp({ pull }));
    for (const path of ['/v2/_catalog', `/v2/a/referrers/${DIGEST}`]) {
      const res = await api.get(path);
      assert.equal(res.status, 405, path);
      assert.equal(code(res), 'UNSUPPORTED', path);
    }
  });

  it('serves the push routes with a push backend', async () => {
    const api = supertest(createApp({ pull: local, push: local }));
    const res = await api.post('/v2/a/blobs/uploads/');
    assert.equal(res.status, 202);
  });

  it('matches a role\'s own routes before the standard ones', async () => {
    const api = supertest(createApp({
      pull: local,
      routes: [{ name: 'extra', pattern: /^\/(.+)\/blobs\/([^/]+)\/extra$/, keys: ['name', 'digest'], methods: { GET: async (_req, res, p) => { res.json(p); } } }],
    }));
    const res = await api.get(`/v2/a/b/blobs/${DIGEST}/extra`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { name: 'a/b', digest: DIGEST });
    assert.equal((await api.post(`/v2/a/blobs/${DIGEST}/extra`)).status, 405);
  });
});
