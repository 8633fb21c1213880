import assert from 'node:assert/strict';
import { checkRewriteRules, mapTag, matchPattern, substitute } from '../../../lib/rewrite/pattern.ts';
import { isRegistryError } from '../../../lib/oci/errors.ts';
import type { RewriteRule } from '../../../lib/config/schema.ts';

describe('rewrite/pattern', () => {
  const matches: Array<[string, string, { capture?: string } | undefined]> = [
    ['kollaglue/*', 'kollaglue/centos-source-heka', { capture: 'centos-source-heka' }],
    ['kollaglue/*', 'kollaglue/a/b', { capture: 'a/b' }],
    ['kollaglue/*', 'kollaglue', undefined],
    ['kollaglue/*', 'kollaglue/', undefined],
    ['kollaglue/*', 'kolla/x', undefined],
    ['kollaglue/*', 'xkollaglue/x', undefined],
    ['coreos*', 'coreos-etcd', { capture: '-etcd' }],
    ['pinned/etcd', 'pinned/etcd', {}],
    ['pinned/etcd', 'pinned/etcd2', undefined],
    ['quay.io/openstack.kolla/*', 'quay.io/openstack.kolla/nova-api', { capture: 'nova-api' }],
  ];
  for (const [pattern, name, expected] of matches) {
    it(`matches ${JSON.stringify(pattern)} against ${JSON.stringify(name)} as ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(matchPattern(pattern, name), expected);
    });
  }

  it('substitutes the capture for the star', () => assert.equal(substitute('lokolla/*', 'nova-api'), 'lokolla/nova-api'));
  it('keeps a target without a star as it is', () => assert.equal(substitute('vendor/etcd', 'x'), 'vendor/etcd'));
  it('answers NAME_INVALID when the result is no repository name', () => {
    assert.throws(() => substitute('lokolla-*', '/x'), (e: unknown) => isRegistryError(e) && e.code === 'NAME_INVALID');
  });
  it('refuses a star with nothing captured', () => assert.throws(() => substitute('lokolla/*', undefined), /captures nothing/));

  it('maps tags through own keys only', () => {
    assert.equal(mapTag({ mitaka: '2.0.2' }, 'mitaka'), '2.0.2');
    assert.equal(mapTag({ mitaka: '2.0.2' }, 'constructor'), 'constructor');
    assert.equal(mapTag(undefined, 'latest'), 'latest');
  });

  const rules: Array<[string, RewriteRule[], string[]]> = [
    ['finds nothing wrong with the shipped kind of rules', [{ match: 'kollaglue/*', local: 'lokolla/*', upstream: 'hub', upstreamName: 'kolla/*', tags: { mitaka: '2.0.2' } }], []],
    ['flags a star that is not at the end', [{ match: 'a/*/b', local: 'x/*' }], ['rewrite.0.match: only one *, at the end, is allowed (got "a/*/b")']],
    ['flags two stars', [{ match: 'a/**', local: 'x' }], ['rewrite.0.match: only one *, at the end, is allowed (got "a/**")']],
    ['flags a target star with no pattern star', [{ match: 'a/b', local: 'x/*' }], ['rewrite.0.local: has * but match has none to fill it']],
    ['flags two stars in a target', [{ match: 'a/*', upstreamName: 'x/*/*', upstream: 'hub' }], ['rewrite.0.upstreamName: at most one * is allowed']],
    ['flags a target that is no name pattern', [{ match: 'a/*', local: 'X/*' }], ['rewrite.0.local: not a repository name pattern']],
    ['flags invalid tags in a tag map', [{ match: 'a/*', local: 'b/*', tags: { '-x': 'ok', y: 'a b' } }], ['rewrite.0.tags: invalid tag "-x"', 'rewrite.0.tags.y: invalid tag "a b"']],
  ];
  for (const [spec, list, problems] of rules) {
    it(spec, () => assert.deepEqual(checkRewriteRules(list), problems));
  }
});
