import assert from 'node:assert/strict';
import { importTarget, splitNameTag } from '../../lib/archive/naming.ts';
import type { RewriteRule } from '../../lib/config/schema.ts';
import type { RoutingConfig } from '../../lib/rewrite/route.ts';

const rules: RewriteRule[] = [
  { match: 'kollaglue/*', local: 'lokolla/*', upstream: 'hub', upstreamName: 'kolla/*' },
  { match: 'openstack.kolla/*', local: 'lokolla/*', upstream: 'quay' },
  { match: 'library/*', local: 'official/*' },
  { match: 'nolocal/*', upstream: 'hub' },
];
const routing: RoutingConfig = { upstreams: { hub: { url: 'https://registry-1.docker.io', kind: 'dockerhub', hosts: ['docker.io'] }, quay: { url: 'https://quay.io', kind: 'registry', hosts: [] } }, rewrite: rules };

describe('import naming', () => {
  it('keeps the name a mirror would ask for when nothing else applies', () => {
    assert.deepEqual(importTarget('kolla/centos-binary-nova-api:2.0.2'), { name: 'kolla/centos-binary-nova-api', tag: '2.0.2' });
    assert.deepEqual(importTarget('docker.io/kolla/x:1'), { name: 'kolla/x', tag: '1' });
    assert.deepEqual(importTarget('ubuntu'), { name: 'library/ubuntu', tag: 'latest' });
    assert.deepEqual(importTarget('quay.io/openstack.kolla/nova-api:2025.1'), { name: 'quay.io/openstack.kolla/nova-api', tag: '2025.1' });
  });

  it('drops a registry host with a port, which no repository name can hold', () => {
    assert.deepEqual(importTarget('127.0.0.1:4000/lokolla/x:7'), { name: 'lokolla/x', tag: '7' });
    assert.deepEqual(importTarget('localhost/a/b:1'), { name: 'a/b', tag: '1' });
  });

  it('serves an image from the local name of the rule whose match or upstreamName matches it', () => {
    assert.deepEqual(importTarget('kollaglue/centos-source-heka:2.0.1', { routing }), { name: 'lokolla/centos-source-heka', tag: '2.0.1' });
    assert.deepEqual(importTarget('kolla/centos-binary-nova-api:2.0.2', { routing }), { name: 'lokolla/centos-binary-nova-api', tag: '2.0.2' });
    assert.deepEqual(importTarget('quay.io/openstack.kolla/nova-api:2025.1', { routing }), { name: 'lokolla/nova-api', tag: '2025.1' });
    assert.deepEqual(importTarget('ubuntu:24.04', { routing }), { name: 'official/ubuntu', tag: '24.04' });
  });

  it('takes what route says: a pull of kolla/special looks in kolla/special when a rule without local decides it first', () => {
    const first: RoutingConfig = {
      upstreams: routing.upstreams,
      rewrite: [{ match: 'kolla/special', upstream: 'hub' }, { match: 'kolla/*', local: 'lokolla/*', upstream: 'hub' }],
    };
    assert.deepEqual(importTarget('kolla/special:1', { routing: first }), { name: 'kolla/special', tag: '1' });
    assert.deepEqual(importTarget('kolla/other:1', { routing: first }), { name: 'lokolla/other', tag: '1' });
  });

  it('ignores rules without a local name', () => {
    assert.deepEqual(importTarget('nolocal/x:1', { routing }), { name: 'nolocal/x', tag: '1' });
  });

  it('puts --prefix before the last path component, the namespace dropped', () => {
    assert.deepEqual(importTarget('kolla/centos-binary-nova-api:2.0.2', { prefix: 'lokolla/', routing }), { name: 'lokolla/centos-binary-nova-api', tag: '2.0.2' });
    assert.deepEqual(importTarget('ubuntu', { prefix: 'mirror/' }), { name: 'mirror/ubuntu', tag: 'latest' });
    assert.throws(() => importTarget('ubuntu', { prefix: 'Bad/' }), /invalid repository name/);
  });

  it('takes --as over everything, with the source tag unless --as gives one', () => {
    assert.deepEqual(importTarget('kolla/x:2', { as: 'a/b', prefix: 'p/', routing }), { name: 'a/b', tag: '2' });
    assert.deepEqual(importTarget('kolla/x:2', { as: 'a/b:9' }), { name: 'a/b', tag: '9' });
    assert.deepEqual(importTarget(undefined, { as: 'a/b' }), { name: 'a/b', tag: 'latest' });
    assert.throws(() => importTarget('kolla/x:2', { as: 'A/b' }), /--as: invalid repository name/);
  });

  it('cannot name an image without a source name or --as', () => {
    assert.throws(() => importTarget(undefined, { routing }), /--as/);
  });

  it('splits a tag only after the last slash', () => {
    assert.deepEqual(splitNameTag('a/b:1'), { name: 'a/b', tag: '1' });
    assert.deepEqual(splitNameTag('a/b'), { name: 'a/b' });
  });
});
