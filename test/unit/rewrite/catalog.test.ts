import assert from 'node:assert/strict';
import { loadConfig } from '../../../lib/config/load.ts';
import { catalogNames, namesServedFrom, requestedTags } from '../../../lib/rewrite/catalog.ts';
import { route, type RoutingConfig } from '../../../lib/rewrite/route.ts';

const config: RoutingConfig = {
  upstreams: {
    hub: { url: 'https://registry-1.docker.io', kind: 'dockerhub', hosts: ['docker.io'] },
    quay: { url: 'https://quay.io', kind: 'registry', hosts: [] },
  },
  defaultUpstream: 'hub',
  rewrite: [
    { match: 'kollaglue/*', local: 'lokolla/*', upstream: 'hub', upstreamName: 'kolla/*' },
    { match: 'kolla/*', local: 'lokolla/*', upstream: 'hub' },
    { match: 'kolla/special', local: 'elsewhere/special' },
    { match: 'quay.io/openstack.kolla/*', local: 'lokolla/*', upstream: 'quay' },
    { match: 'pinned/etcd', local: 'vendor/etcd' },
    { match: 'all/*', local: 'one/repo' },
    { match: 'upstream-only/*', upstream: 'quay' },
  ],
};

describe('rewrite/catalog', () => {
  const served: Array<[string, string, string[]]> = [
    ['exposes a local repository under every star rule that leads to it',
      'lokolla/nova-api', ['kolla/nova-api', 'kollaglue/nova-api', 'quay.io/openstack.kolla/nova-api']],
    ['exposes the exact name of an exact rule', 'vendor/etcd', ['pinned/etcd']],
    ['exposes nothing for a rule mapping many names to one repository', 'one/repo', []],
    ['exposes nothing for a repository no rule serves from', 'library/ubuntu', []],
    ['never exposes a name an earlier rule sends elsewhere', 'elsewhere/special', []],
  ];
  for (const [spec, local, names] of served) {
    it(spec, () => assert.deepEqual(namesServedFrom(config, local), names));
  }

  it('checks that each exposed name routes back to its local repository', () => {
    for (const name of namesServedFrom(config, 'lokolla/nova-api')) assert.equal(route(config, name).local, 'lokolla/nova-api');
  });

  it('lists local repositories and the names rules serve from them, sorted, once each', () => {
    assert.deepEqual(catalogNames(config, ['lokolla/nova-api', 'library/ubuntu', 'lokolla/base', 'vendor/etcd', 'kolla/base']), [
      'kolla/base', 'kolla/nova-api', 'kollaglue/base', 'kollaglue/nova-api', 'library/ubuntu', 'lokolla/base',
      'lokolla/nova-api', 'pinned/etcd', 'quay.io/openstack.kolla/base', 'quay.io/openstack.kolla/nova-api', 'vendor/etcd',
    ]);
  });

  it('serves the shipped config\'s lokolla/* as kollaglue/* and kolla/* in the catalog', () => {
    assert.deepEqual(catalogNames(loadConfig(undefined, {}), ['lokolla/centos-binary-nova-api']),
      ['kolla/centos-binary-nova-api', 'kollaglue/centos-binary-nova-api', 'lokolla/centos-binary-nova-api']);
  });

  const tags: Array<[string, Record<string, string> | undefined, string[], string[]]> = [
    ['lists the served tags as they are without a tag map', undefined, ['2.0.2', 'latest'], ['2.0.2', 'latest']],
    ['adds each requested tag whose served tag is held', { mitaka: '2.0.2' }, ['2.0.2', 'latest'], ['2.0.2', 'latest', 'mitaka']],
    ['leaves out a requested tag whose served tag is missing', { mitaka: '2.0.2' }, ['latest'], ['latest']],
    ['hides a served tag a map sends elsewhere', { latest: '2.0.2' }, ['2.0.2', 'latest'], ['2.0.2', 'latest']],
    ['hides a served tag that, asked for, would be mapped to a missing one', { latest: '9.9.9' }, ['2.0.2', 'latest'], ['2.0.2']],
    ['lists several requested tags for one served tag', { a: 'v1', b: 'v1' }, ['v1'], ['a', 'b', 'v1']],
    ['treats a tag named like an Object property as a plain tag', { mitaka: '2.0.2' }, ['constructor'], ['constructor']],
    ['lists nothing for an empty repository', { mitaka: '2.0.2' }, [], []],
  ];
  for (const [spec, tagMap, held, expected] of tags) {
    it(spec, () => assert.deepEqual(requestedTags(tagMap ? { tagMap } : {}, held), expected));
  }
});

describe('rewrite/catalog with a broken rule', () => {
  it('hides a name whose route fails instead of failing the listing', () => {
    const broken: RoutingConfig = { upstreams: {}, rewrite: [{ match: 'a/*', upstream: 'missing' }, { match: 'a/*', local: 'b/*' }] };
    assert.deepEqual(catalogNames(broken, ['b/x']), ['b/x']);
  });
});
