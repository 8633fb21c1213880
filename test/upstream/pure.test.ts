import assert from 'node:assert/strict';
import { nextPageUrl } from '../../lib/upstream/link.ts';
import { upstreamRepository } from '../../lib/upstream/repository.ts';
import { pullScope, tokenLifetimeMs } from '../../lib/upstream/auth.ts';

describe('upstreamRepository', () => {
  const table: Array<[Parameters<typeof upstreamRepository>[0], string, string]> = [
    ['dockerhub', 'ubuntu', 'library/ubuntu'],
    ['dockerhub', 'kolla/centos-binary-base', 'kolla/centos-binary-base'],
    ['dockerhub', 'library/ubuntu', 'library/ubuntu'],
    ['registry', 'ubuntu', 'ubuntu'],
    ['relay', 'ubuntu', 'ubuntu'],
  ];
  for (const [kind, name, expected] of table) {
    it(`names ${name} ${expected} on a ${kind} upstream`, () => assert.equal(upstreamRepository(kind, name), expected));
  }
});

describe('nextPageUrl (Link pagination)', () => {
  const page = new URL('http://r.example:5000/v2/a/tags/list');
  const table: Array<[string, string | string[] | undefined, string | undefined]> = [
    ['distribution\'s relative next link', '</v2/a/tags/list?last=b&n=2>; rel="next"', 'http://r.example:5000/v2/a/tags/list?last=b&n=2'],
    ['an absolute link', '<http://r.example:5000/v2/a/tags/list?last=z>; rel=next', 'http://r.example:5000/v2/a/tags/list?last=z'],
    ['next among several links', '</first>; rel="first", </v2/a/tags/list?last=c>; rel="next"', 'http://r.example:5000/v2/a/tags/list?last=c'],
    ['a rel list containing next', '</p2>; type="x"; rel="prefetch next"', 'http://r.example:5000/p2'],
    ['only a previous link', '</p0>; rel="prev"', undefined],
    ['a rel that merely starts with next', '</p0>; rel="nextish"', undefined],
    ['no Link header', undefined, undefined],
  ];
  for (const [what, link, expected] of table) {
    it(`finds ${expected ?? 'no next page'} in ${what}`, () => assert.equal(nextPageUrl(link, page)?.href, expected));
  }
});

describe('token scope and lifetime', () => {
  it('asks for pull access to the repository', () => assert.equal(pullScope('library/ubuntu'), 'repository:library/ubuntu:pull'));
  it('renews a token before it expires: a fifth of its life early, at most 30 s', () => {
    assert.equal(tokenLifetimeMs(60), 48_000);
    assert.equal(tokenLifetimeMs(300), 270_000);
    assert.equal(tokenLifetimeMs(5), 4_000);
  });
});
