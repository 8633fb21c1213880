import assert from 'node:assert/strict';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { createFixture, descriptor, expectError, imageManifest, pushBlob, pushManifest, type Api, type Fixture } from './fixture.ts';

/** The target of a Link: <url>; rel="next" header, or undefined. */
function nextLink(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^<([^>]+)>;\s*rel="next"$/.exec(header);
  assert.ok(m, `malformed Link header ${header}`);
  return m[1];
}

/** Follows Link headers from the first page; returns every page's items. */
async function walk(api: Api, first: string, key: 'tags' | 'repositories'): Promise<string[][]> {
  const pages: string[][] = [];
  let url: string | undefined = first;
  while (url !== undefined) {
    const res = await api.get(url);
    assert.equal(res.status, 200, res.text);
    pages.push(res.body[key] as string[]);
    url = nextLink(res.headers.link);
    assert.ok(pages.length < 50, 'pagination does not end');
  }
  return pages;
}

describe('api: listing', () => {
  describe('GET /v2/<name>/tags/list', () => {
    let fx: Fixture;
    // ASCIIbetical: digits, then upper case, then "_", then lower case.
    const tags = ['1.0', 'A', 'B', '_x', 'a', 'b', 'latest', 'v2'];
    before(async () => {
      fx = await createFixture();
      const cfg = await pushBlob(fx.api, 'list/app', '{"os":"linux"}');
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), []);
      for (const tag of [...tags].reverse()) await pushManifest(fx.api, 'list/app', tag, m);
    });
    after(async () => { await fx.close(); });

    it('lists every tag in lexical order with the repository name', async () => {
      const res = await fx.api.get('/v2/list/app/tags/list');
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      assert.deepEqual(res.body, { name: 'list/app', tags });
      assert.equal(res.headers.link, undefined);
    });

    it('pages with n and a Link header to the next page', async () => {
      const res = await fx.api.get('/v2/list/app/tags/list?n=3');
      assert.deepEqual(res.body.tags, ['1.0', 'A', 'B']);
      assert.equal(res.headers.link, '</v2/list/app/tags/list?n=3&last=B>; rel="next"');
    });

    it('walks every tag exactly once by following Link headers', async () => {
      const pages = await walk(fx.api, '/v2/list/app/tags/list?n=3', 'tags');
      assert.deepEqual(pages, [['1.0', 'A', 'B'], ['_x', 'a', 'b'], ['latest', 'v2']]);
    });

    it('sends no Link when n covers exactly what is left', async () => {
      const res = await fx.api.get('/v2/list/app/tags/list?n=2&last=b');
      assert.deepEqual(res.body.tags, ['latest', 'v2']);
      assert.equal(res.headers.link, undefined);
    });

    it('starts after last, with or without n', async () => {
      assert.deepEqual((await fx.api.get('/v2/list/app/tags/list?last=a')).body.tags, ['b', 'latest', 'v2']);
      assert.deepEqual((await fx.api.get('/v2/list/app/tags/list?last=a&n=1')).body.tags, ['b']);
      assert.deepEqual((await fx.api.get('/v2/list/app/tags/list?last=zzz')).body.tags, []);
      // last need not be a tag that exists: the list resumes after where it would sort.
      assert.deepEqual((await fx.api.get('/v2/list/app/tags/list?last=c')).body.tags, ['latest', 'v2']);
    });

    it('answers n=0 with an empty list and no Link', async () => {
      const res = await fx.api.get('/v2/list/app/tags/list?n=0');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.tags, []);
      assert.equal(res.headers.link, undefined);
    });

    it('answers an n larger than the list with all of it and no Link', async () => {
      const res = await fx.api.get('/v2/list/app/tags/list?n=1000');
      assert.deepEqual(res.body.tags, tags);
      assert.equal(res.headers.link, undefined);
    });

    for (const n of ['-1', 'abc', '1.5', '', '1e3', '99999999999999999999', '0x10']) {
      it(`answers PAGINATION_NUMBER_INVALID for n=${JSON.stringify(n)}`, async () => {
        expectError(await fx.api.get(`/v2/list/app/tags/list?n=${n}`), 400, 'PAGINATION_NUMBER_INVALID');
      });
    }

    it('answers PAGINATION_NUMBER_INVALID for n given twice', async () => {
      expectError(await fx.api.get('/v2/list/app/tags/list?n=1&n=2'), 400, 'PAGINATION_NUMBER_INVALID');
    });

    it('answers NAME_UNKNOWN for a repository it does not know', async () => {
      expectError(await fx.api.get('/v2/list/unknown/tags/list'), 404, 'NAME_UNKNOWN');
    });

    it('answers NAME_INVALID for an invalid repository name', async () => {
      expectError(await fx.api.get('/v2/List/App/tags/list'), 400, 'NAME_INVALID');
    });

    it('answers an empty list for a repository whose tags were all deleted', async () => {
      const cfg = await pushBlob(fx.api, 'list/gone', '{"os":"linux"}');
      await pushManifest(fx.api, 'list/gone', 'only', imageManifest(descriptor(cfg, MEDIA.ociConfig), []));
      assert.equal((await fx.api.delete('/v2/list/gone/manifests/only')).status, 202);
      const res = await fx.api.get('/v2/list/gone/tags/list');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { name: 'list/gone', tags: [] });
    });

    it('answers HEAD like GET, without a body', async () => {
      const res = await fx.api.head('/v2/list/app/tags/list');
      assert.equal(res.status, 200);
      expectError(await fx.api.head('/v2/list/unknown/tags/list'), 404, 'NAME_UNKNOWN');
    });

    it('answers UNSUPPORTED (405) for a method tags/list does not take', async () => {
      const res = await fx.api.delete('/v2/list/app/tags/list');
      expectError(res, 405, 'UNSUPPORTED');
      assert.equal(res.headers.allow, 'GET, HEAD');
    });
  });

  describe('GET /v2/_catalog', () => {
    let fx: Fixture;
    const repos = ['a', 'a/b', 'a/b/c', 'b-c', 'b.c', 'b/c', 'z'];
    before(async () => {
      fx = await createFixture();
      for (const name of [...repos].reverse()) {
        const cfg = await pushBlob(fx.api, name, `{"repo":"${name}"}`);
        await pushManifest(fx.api, name, 'latest', imageManifest(descriptor(cfg, MEDIA.ociConfig), []));
      }
    });
    after(async () => { await fx.close(); });

    it('answers an empty catalog for an empty registry', async () => {
      const empty = await createFixture();
      try {
        const res = await empty.api.get('/v2/_catalog');
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { repositories: [] });
      } finally {
        await empty.close();
      }
    });

    it('lists every repository, nested ones included, in lexical order', async () => {
      const res = await fx.api.get('/v2/_catalog');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { repositories: repos });
    });

    it('pages with n and an encoded Link header', async () => {
      const res = await fx.api.get('/v2/_catalog?n=2');
      assert.deepEqual(res.body.repositories, ['a', 'a/b']);
      assert.equal(res.headers.link, '</v2/_catalog?n=2&last=a%2Fb>; rel="next"');
    });

    it('walks every repository exactly once by following Link headers', async () => {
      const pages = await walk(fx.api, '/v2/_catalog?n=3', 'repositories');
      assert.deepEqual(pages, [['a', 'a/b', 'a/b/c'], ['b-c', 'b.c', 'b/c'], ['z']]);
    });

    it('starts after last', async () => {
      assert.deepEqual((await fx.api.get('/v2/_catalog?last=b.c')).body.repositories, ['b/c', 'z']);
      assert.deepEqual((await fx.api.get('/v2/_catalog?last=b.c&n=1')).body.repositories, ['b/c']);
    });

    it('answers n=0 with an empty list and no Link', async () => {
      const res = await fx.api.get('/v2/_catalog?n=0');
      assert.deepEqual(res.body.repositories, []);
      assert.equal(res.headers.link, undefined);
    });

    for (const n of ['-5', 'ten', '']) {
      it(`answers PAGINATION_NUMBER_INVALID for n=${JSON.stringify(n)}`, async () => {
        expectError(await fx.api.get(`/v2/_catalog?n=${n}`), 400, 'PAGINATION_NUMBER_INVALID');
      });
    }

    it('answers UNSUPPORTED (405) for a method the catalog does not take', async () => {
      expectError(await fx.api.post('/v2/_catalog'), 405, 'UNSUPPORTED');
    });
  });
});
