import assert from 'node:assert/strict';
import { loadConfig, parseConfig } from '../../../lib/config/load.ts';
import { isRegistryError } from '../../../lib/oci/errors.ts';
import { route, type Route, type RoutingConfig } from '../../../lib/rewrite/route.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;

/** A config with every kind of rule and upstream routing knows. */
const config: RoutingConfig = parseConfig({
  upstreams: {
    hub: { url: 'https://registry-1.docker.io', kind: 'dockerhub', hosts: ['docker.io', 'index.docker.io'] },
    quay: { url: 'https://quay.io' },
    lan: { url: 'http://registry.lan:5000', hosts: ['registry.lan'] },
    ghcr: { url: 'https://ghcr.io', hosts: ['GHCR.example.org'] },
  },
  defaultUpstream: 'hub',
  rewrite: [
    { match: 'kollaglue/*', local: 'lokolla/*', upstream: 'hub', upstreamName: 'kolla/*', tags: { mitaka: '2.0.2', constructor: 'x' } },
    { match: 'kolla/*', local: 'lokolla/*', upstream: 'hub' },
    { match: 'openstack.kolla/*', local: 'quay.io/openstack.kolla/*', upstream: 'quay' },
    { match: 'quay.io/openstack.kolla/*', upstream: 'quay' },
    { match: 'pinned/etcd', local: 'vendor/etcd', tags: { stable: '3.5.9' } },
    { match: 'offline/*', local: 'archive/*' },
    { match: 'coreos*', upstream: 'quay', upstreamName: 'mirror/coreos*' },
    { match: 'busybox', upstream: 'hub' },
    { match: 'ghcr.io/team/*', local: 'team/*', upstream: 'ghcr' },
    { match: 'intranet.example/*', local: 'intranet/*' },
  ],
}, 'test.json');

const routes: Array<[string, [string, string?, string?], Route]> = [
  // Rules: first match wins, * captures the rest, targets get the capture.
  ['serves kollaglue/* from lokolla/* and Docker Hub kolla/*',
    ['kollaglue/centos-source-heka', '2.0.2'],
    { requested: 'kollaglue/centos-source-heka', local: 'lokolla/centos-source-heka', upstream: { name: 'hub', repository: 'kolla/centos-source-heka' }, tag: '2.0.2', rule: 0, tagMap: { mitaka: '2.0.2', constructor: 'x' } }],
  ['maps a requested tag through the tag map for local and upstream alike',
    ['kollaglue/centos-binary-nova-api', 'mitaka'],
    { requested: 'kollaglue/centos-binary-nova-api', local: 'lokolla/centos-binary-nova-api', upstream: { name: 'hub', repository: 'kolla/centos-binary-nova-api' }, tag: '2.0.2', rule: 0, tagMap: { mitaka: '2.0.2', constructor: 'x' } }],
  ['takes a tag named like an Object property for a plain tag',
    ['kollaglue/x', 'toString'],
    { requested: 'kollaglue/x', local: 'lokolla/x', upstream: { name: 'hub', repository: 'kolla/x' }, tag: 'toString', rule: 0, tagMap: { mitaka: '2.0.2', constructor: 'x' } }],
  ['leaves a digest reference alone (no tag, digest kept)',
    ['kollaglue/x', DIGEST],
    { requested: 'kollaglue/x', local: 'lokolla/x', upstream: { name: 'hub', repository: 'kolla/x' }, digest: DIGEST, rule: 0, tagMap: { mitaka: '2.0.2', constructor: 'x' } }],
  ['captures several components after the star',
    ['kolla/a/b', 'latest'],
    { requested: 'kolla/a/b', local: 'lokolla/a/b', upstream: { name: 'hub', repository: 'kolla/a/b' }, tag: 'latest', rule: 1 }],
  ['defaults the upstream name to the requested name',
    ['kolla/centos-binary-nova-api', 'wallaby'],
    { requested: 'kolla/centos-binary-nova-api', local: 'lokolla/centos-binary-nova-api', upstream: { name: 'hub', repository: 'kolla/centos-binary-nova-api' }, tag: 'wallaby', rule: 1 }],
  ['does not let kollaglue/* match kollaglue itself',
    ['kollaglue', 'latest'],
    { requested: 'kollaglue', local: 'kollaglue', upstream: { name: 'hub', repository: 'library/kollaglue' }, tag: 'latest' }],
  ['routes without a reference (blobs, tags/list)',
    ['kolla/nova-api'],
    { requested: 'kolla/nova-api', local: 'lokolla/nova-api', upstream: { name: 'hub', repository: 'kolla/nova-api' }, rule: 1 }],
  ['matches an exact pattern exactly, with a local-only target and a tag map',
    ['pinned/etcd', 'stable'],
    { requested: 'pinned/etcd', local: 'vendor/etcd', tag: '3.5.9', rule: 4, tagMap: { stable: '3.5.9' } }],
  ['passes a tag absent from the map through unchanged',
    ['pinned/etcd', '3.4.0'],
    { requested: 'pinned/etcd', local: 'vendor/etcd', tag: '3.4.0', rule: 4, tagMap: { stable: '3.5.9' } }],
  ['does not match an exact pattern by prefix',
    ['pinned/etcd2', 'v1'],
    { requested: 'pinned/etcd2', local: 'pinned/etcd2', upstream: { name: 'hub', repository: 'pinned/etcd2' }, tag: 'v1' }],
  ['serves a local-only rule with no upstream',
    ['offline/app', 'v1'],
    { requested: 'offline/app', local: 'archive/app', tag: 'v1', rule: 5 }],
  ['looks local under the requested name for a rule with only an upstream',
    ['coreos/etcd', 'v3'],
    { requested: 'coreos/etcd', local: 'coreos/etcd', upstream: { name: 'quay', repository: 'mirror/coreos/etcd' }, tag: 'v3', rule: 6 }],
  ['lets a star follow a partial component',
    ['coreos-etcd', 'v3'],
    { requested: 'coreos-etcd', local: 'coreos-etcd', upstream: { name: 'quay', repository: 'mirror/coreos-etcd' }, tag: 'v3', rule: 6 }],
  ['adds library/ to a one-component name a rule sends to Docker Hub',
    ['busybox', 'latest'],
    { requested: 'busybox', local: 'busybox', upstream: { name: 'hub', repository: 'library/busybox' }, tag: 'latest', rule: 7 }],
  ['serves Kolla Zed+ pulls of openstack.kolla/* (docker_registry set to the mirror) from quay.io',
    ['openstack.kolla/nova-api', '2025.1-rocky-9'],
    { requested: 'openstack.kolla/nova-api', local: 'quay.io/openstack.kolla/nova-api', upstream: { name: 'quay', repository: 'openstack.kolla/nova-api' }, tag: '2025.1-rocky-9', rule: 2 }],
  ['matches a rule on a host-prefixed name and strips the host for the upstream name',
    ['quay.io/openstack.kolla/nova-api', '2025.1-rocky-9'],
    { requested: 'quay.io/openstack.kolla/nova-api', local: 'quay.io/openstack.kolla/nova-api', upstream: { name: 'quay', repository: 'openstack.kolla/nova-api' }, tag: '2025.1-rocky-9', rule: 3 }],
  ['matches a host-prefixed rule that serves from a plain local name',
    ['ghcr.io/team/tool', 'v2'],
    { requested: 'ghcr.io/team/tool', local: 'team/tool', upstream: { name: 'ghcr', repository: 'team/tool' }, tag: 'v2', rule: 8 }],
  ['serves a rule on an unconfigured host from local only',
    ['intranet.example/app', 'v1'],
    { requested: 'intranet.example/app', local: 'intranet/app', tag: 'v1', rule: 9 }],

  // No rule, host-prefixed.
  ['routes a host-prefixed name to the upstream with that URL host, local under the full name',
    ['quay.io/coreos/etcd', 'v3.5.0'],
    { requested: 'quay.io/coreos/etcd', local: 'quay.io/coreos/etcd', upstream: { name: 'quay', repository: 'coreos/etcd' }, tag: 'v3.5.0' }],
  ['routes by an alias in hosts',
    ['docker.io/library/ubuntu', 'jammy'],
    { requested: 'docker.io/library/ubuntu', local: 'docker.io/library/ubuntu', upstream: { name: 'hub', repository: 'library/ubuntu' }, tag: 'jammy' }],
  ['adds library/ to a one-component name on a dockerhub host',
    ['index.docker.io/ubuntu', 'latest'],
    { requested: 'index.docker.io/ubuntu', local: 'index.docker.io/ubuntu', upstream: { name: 'hub', repository: 'library/ubuntu' }, tag: 'latest' }],
  ['routes by the URL host of Docker Hub too',
    ['registry-1.docker.io/library/alpine', 'latest'],
    { requested: 'registry-1.docker.io/library/alpine', local: 'registry-1.docker.io/library/alpine', upstream: { name: 'hub', repository: 'library/alpine' }, tag: 'latest' }],
  ['matches hosts without regard to case',
    ['ghcr.example.org/team/x', 'v1'],
    { requested: 'ghcr.example.org/team/x', local: 'ghcr.example.org/team/x', upstream: { name: 'ghcr', repository: 'team/x' }, tag: 'v1' }],
  ['does not add library/ on a registry that is not Docker Hub',
    ['registry.lan/app', 'v1'],
    { requested: 'registry.lan/app', local: 'registry.lan/app', upstream: { name: 'lan', repository: 'app' }, tag: 'v1' }],
  ['treats localhost as a host: local only when no upstream serves it',
    ['localhost/app', 'v1'],
    { requested: 'localhost/app', local: 'localhost/app', tag: 'v1', unknownHost: 'localhost' }],
  ['never fetches from a host no upstream serves, serving it from local only',
    ['evil.example.com/x/y', 'latest'],
    { requested: 'evil.example.com/x/y', local: 'evil.example.com/x/y', tag: 'latest', unknownHost: 'evil.example.com' }],
  ['takes a one-component name with a dot for a plain name, not a host',
    ['quay.io', 'latest'],
    { requested: 'quay.io', local: 'quay.io', upstream: { name: 'hub', repository: 'library/quay.io' }, tag: 'latest' }],

  // No rule, no host: registry-mirrors mode.
  ['serves library/ubuntu from local, then Docker Hub (registry-mirrors)',
    ['library/ubuntu', 'latest'],
    { requested: 'library/ubuntu', local: 'library/ubuntu', upstream: { name: 'hub', repository: 'library/ubuntu' }, tag: 'latest' }],
  ['adds library/ for the default Docker Hub upstream to a one-component name',
    ['ubuntu', '24.04'],
    { requested: 'ubuntu', local: 'ubuntu', upstream: { name: 'hub', repository: 'library/ubuntu' }, tag: '24.04' }],

  // containerd ?ns=
  ['treats ns=docker.io as the default upstream: rules apply to the bare name',
    ['kolla/nova-api', 'wallaby', 'docker.io'],
    { requested: 'kolla/nova-api', local: 'lokolla/nova-api', upstream: { name: 'hub', repository: 'kolla/nova-api' }, tag: 'wallaby', rule: 1 }],
  ['treats ns=docker.io like registry-mirrors, sharing its local name',
    ['library/ubuntu', 'latest', 'docker.io'],
    { requested: 'library/ubuntu', local: 'library/ubuntu', upstream: { name: 'hub', repository: 'library/ubuntu' }, tag: 'latest' }],
  ['takes a name under ns for a path on that registry even when it has a dot',
    ['some.org/app', 'v1', 'docker.io'],
    { requested: 'some.org/app', local: 'some.org/app', upstream: { name: 'hub', repository: 'some.org/app' }, tag: 'v1' }],
  ['prefixes the ns host for another registry, so host-prefixed rules apply',
    ['openstack.kolla/nova-api', '2025.1-rocky-9', 'quay.io'],
    { requested: 'openstack.kolla/nova-api', local: 'quay.io/openstack.kolla/nova-api', upstream: { name: 'quay', repository: 'openstack.kolla/nova-api' }, tag: '2025.1-rocky-9', rule: 3 }],
  ['routes ns of a configured host without a rule, local under host/name',
    ['coreos/etcd', 'v3', 'QUAY.IO'],
    { requested: 'coreos/etcd', local: 'quay.io/coreos/etcd', upstream: { name: 'quay', repository: 'coreos/etcd' }, tag: 'v3' }],
  ['routes ns with a port by its URL host; no local name can hold a port',
    ['team/app', 'v1', 'registry.lan:5000'],
    { requested: 'team/app', upstream: { name: 'lan', repository: 'team/app' }, tag: 'v1' }],
  ['ignores ns for a name already prefixed by a configured host',
    ['quay.io/coreos/etcd', 'v3', 'mirror.example:4000'],
    { requested: 'quay.io/coreos/etcd', local: 'quay.io/coreos/etcd', upstream: { name: 'quay', repository: 'coreos/etcd' }, tag: 'v3' }],
  ['lets a rule match an ns host no upstream serves',
    ['app', 'v1', 'intranet.example'],
    { requested: 'app', local: 'intranet/app', tag: 'v1', rule: 9 }],
  ['does not prefix the ns host twice when a hosts.toml with override_path already put it in the path',
    ['quay.io/coreos/etcd', 'v3', 'quay.io'],
    { requested: 'quay.io/coreos/etcd', local: 'quay.io/coreos/etcd', upstream: { name: 'quay', repository: 'coreos/etcd' }, tag: 'v3' }],
  ['lets a host-prefixed rule match a name the ns host already prefixes, once',
    ['intranet.example/app', 'v1', 'intranet.example'],
    { requested: 'intranet.example/app', local: 'intranet/app', tag: 'v1', rule: 9 }],
  ['ignores an empty ns',
    ['ubuntu', 'latest', ''],
    { requested: 'ubuntu', local: 'ubuntu', upstream: { name: 'hub', repository: 'library/ubuntu' }, tag: 'latest' }],
];

const failures: Array<[string, RoutingConfig, [string, string?, string?], string]> = [
  ['answers NAME_UNKNOWN for an ns host no upstream serves', config, ['library/ubuntu', 'latest', 'registry.evil.example'], 'NAME_UNKNOWN'],
  ['answers NAME_INVALID for an invalid name', config, ['Kolla/Nova', 'latest'], 'NAME_INVALID'],
  ['answers NAME_INVALID for a name with a port (no repository name can hold one)', config, ['localhost:5000/x', 'latest'], 'NAME_INVALID'],
  ['answers DIGEST_INVALID for a malformed digest', config, ['kolla/x', 'sha256:abc'], 'DIGEST_INVALID'],
  ['answers MANIFEST_INVALID for a malformed tag', config, ['kolla/x', '-bad'], 'MANIFEST_INVALID'],
  ['answers NAME_INVALID when a rule builds an invalid name',
    { upstreams: {}, rewrite: [{ match: 'a*', local: 'b-*' }] }, ['a/x', 'latest'], 'NAME_INVALID'],
  ['fails loudly on a rule naming an upstream that is not configured',
    { upstreams: {}, rewrite: [{ match: 'a/*', upstream: 'nowhere' }] }, ['a/x', 'latest'], 'UNKNOWN'],
];

describe('rewrite/route', () => {
  for (const [spec, [name, reference, ns], expected] of routes) {
    it(spec, () => assert.deepEqual(route(config, name, reference, ns), expected));
  }
  for (const [spec, cfg, [name, reference, ns], code] of failures) {
    it(spec, () => assert.throws(() => route(cfg, name, reference, ns), (e: unknown) => isRegistryError(e) && e.code === code));
  }

  it('serves only local names when there is no default upstream', () => {
    const bare: RoutingConfig = { upstreams: {}, rewrite: [] };
    assert.deepEqual(route(bare, 'ubuntu', 'latest'), { requested: 'ubuntu', local: 'ubuntu', tag: 'latest' });
  });

  describe('through a ferry relay serving docker.io and quay.io (the README\'s mirror side)', () => {
    const relayed = parseConfig({
      upstreams: { relay: { url: 'https://relay.example.com:5443', kind: 'relay', hosts: ['docker.io', 'index.docker.io', 'quay.io'], token: 'x'.repeat(20) } },
      defaultUpstream: 'relay',
      rewrite: [
        { match: 'kolla/*', local: 'lokolla/*', upstream: 'relay', upstreamName: 'docker.io/kolla/*' },
        { match: 'openstack.kolla/*', upstream: 'relay', upstreamName: 'quay.io/openstack.kolla/*' },
      ],
    }, 'relayed.json', {});
    const cases: Array<[string, [string, string?, string?], Route]> = [
      ['routes containerd ns=docker.io to the relay as a bare name (the relay\'s default is Docker Hub)',
        ['library/busybox', 'latest', 'docker.io'],
        { requested: 'library/busybox', local: 'library/busybox', upstream: { name: 'relay', repository: 'library/busybox' }, tag: 'latest' }],
      ['applies the kolla rule to a containerd ns=docker.io name',
        ['kolla/nova-api', '2025.1', 'docker.io'],
        { requested: 'kolla/nova-api', local: 'lokolla/nova-api', upstream: { name: 'relay', repository: 'docker.io/kolla/nova-api' }, tag: '2025.1', rule: 0 }],
      ['sends a containerd ns=quay.io name to the relay host-qualified, so the relay picks quay',
        ['prometheus/node-exporter', 'v1', 'quay.io'],
        { requested: 'prometheus/node-exporter', local: 'quay.io/prometheus/node-exporter', upstream: { name: 'relay', repository: 'quay.io/prometheus/node-exporter' }, tag: 'v1' }],
      ['asks the relay for quay.io/x, not quay.io/quay.io/x, with override_path',
        ['quay.io/openstack.kolla/nova-api', '2025.1-rocky-9', 'quay.io'],
        { requested: 'quay.io/openstack.kolla/nova-api', local: 'quay.io/openstack.kolla/nova-api', upstream: { name: 'relay', repository: 'quay.io/openstack.kolla/nova-api' }, tag: '2025.1-rocky-9' }],
      ['keeps the host of a host-prefixed name sent to the relay',
        ['docker.io/library/busybox', 'latest'],
        { requested: 'docker.io/library/busybox', local: 'docker.io/library/busybox', upstream: { name: 'relay', repository: 'docker.io/library/busybox' }, tag: 'latest' }],
      ['sends a bare name to the relay as it is (registry-mirrors mode)',
        ['busybox', 'latest'],
        { requested: 'busybox', local: 'busybox', upstream: { name: 'relay', repository: 'busybox' }, tag: 'latest' }],
    ];
    for (const [spec, [name, reference, ns], expected] of cases) {
      it(spec, () => assert.deepEqual(route(relayed, name, reference, ns), expected));
    }
    it('answers NAME_UNKNOWN for a registry the relay is not said to serve', () => {
      assert.throws(() => route(relayed, 'x/y', 'latest', 'ghcr.io'), (e: unknown) => isRegistryError(e) && e.code === 'NAME_UNKNOWN');
    });
  });

  describe('with the shipped registry.config.json', () => {
    const shipped = loadConfig(undefined, {});
    const cases: Array<[string, [string, string?, string?], Route]> = [
      ['serves kollaglue/* (Mitaka 2.0.0-2.0.1 names) from lokolla/*, fetching Docker Hub kolla/*',
        ['kollaglue/centos-source-heka', '2.0.2'],
        { requested: 'kollaglue/centos-source-heka', local: 'lokolla/centos-source-heka', upstream: { name: 'dockerhub', repository: 'kolla/centos-source-heka' }, tag: '2.0.2', rule: 0 }],
      ['serves kolla/* (2.0.2 to Wallaby names) from lokolla/*, fetching Docker Hub kolla/*',
        ['kolla/centos-binary-nova-api', '2.0.2'],
        { requested: 'kolla/centos-binary-nova-api', local: 'lokolla/centos-binary-nova-api', upstream: { name: 'dockerhub', repository: 'kolla/centos-binary-nova-api' }, tag: '2.0.2', rule: 1 }],
      ['routes quay.io/* to quay',
        ['quay.io/openstack.kolla/nova-api', '2025.1-rocky-9'],
        { requested: 'quay.io/openstack.kolla/nova-api', local: 'quay.io/openstack.kolla/nova-api', upstream: { name: 'quay', repository: 'openstack.kolla/nova-api' }, tag: '2025.1-rocky-9' }],
      ['routes ubuntu to Docker Hub library/ubuntu',
        ['ubuntu', 'latest'],
        { requested: 'ubuntu', local: 'ubuntu', upstream: { name: 'dockerhub', repository: 'library/ubuntu' }, tag: 'latest' }],
      ['routes containerd ns=docker.io to Docker Hub',
        ['library/ubuntu', 'latest', 'docker.io'],
        { requested: 'library/ubuntu', local: 'library/ubuntu', upstream: { name: 'dockerhub', repository: 'library/ubuntu' }, tag: 'latest' }],
      ['routes containerd ns=quay.io to quay',
        ['openstack.kolla/nova-api', '2025.1-rocky-9', 'quay.io'],
        { requested: 'openstack.kolla/nova-api', local: 'quay.io/openstack.kolla/nova-api', upstream: { name: 'quay', repository: 'openstack.kolla/nova-api' }, tag: '2025.1-rocky-9' }],
      ['serves openstack.kolla/* (Zed+ names) from local openstack.kolla/*, fetching quay.io openstack.kolla/*',
        ['openstack.kolla/nova-api', '2025.1-rocky-9'],
        { requested: 'openstack.kolla/nova-api', local: 'openstack.kolla/nova-api', upstream: { name: 'quay', repository: 'openstack.kolla/nova-api' }, tag: '2025.1-rocky-9', rule: 2 }],
    ];
    for (const [spec, [name, reference, ns], expected] of cases) {
      it(spec, () => assert.deepEqual(route(shipped, name, reference, ns), expected));
    }
    it('answers NAME_UNKNOWN for containerd ns=ghcr.io', () => {
      assert.throws(() => route(shipped, 'x/y', 'latest', 'ghcr.io'), (e: unknown) => isRegistryError(e) && e.code === 'NAME_UNKNOWN');
    });
  });
});
