import assert from 'node:assert/strict';
import { hostsOf, looksLikeHost, splitHost, upstreamForHost } from '../../../lib/rewrite/hosts.ts';

describe('rewrite/hosts', () => {
  const hostLike: Array<[string, boolean]> = [
    ['quay.io', true], ['localhost', true], ['registry:5000', true], ['openstack.kolla', true],
    ['kolla', false], ['library', false], ['local-host', false],
  ];
  for (const [component, expected] of hostLike) {
    it(`${expected ? 'takes' : 'does not take'} ${component} for a host`, () => assert.equal(looksLikeHost(component), expected));
  }

  it('splits a host-prefixed name into host and rest', () => {
    assert.deepEqual(splitHost('quay.io/openstack.kolla/nova-api'), { host: 'quay.io', rest: 'openstack.kolla/nova-api' });
    assert.equal(splitHost('quay.io'), undefined);
    assert.equal(splitHost('kolla/nova-api'), undefined);
  });

  const upstreams = {
    hub: { url: 'https://registry-1.docker.io', hosts: ['docker.io', 'Index.Docker.io'] },
    lan: { url: 'http://registry.lan:5000/', hosts: [] },
    tls: { url: 'https://secure.lan:443', hosts: [] },
  };
  it('lists the URL host, with a non-default port, and the aliases, lower-cased', () => {
    assert.deepEqual(hostsOf(upstreams.hub), ['registry-1.docker.io', 'docker.io', 'index.docker.io']);
    assert.deepEqual(hostsOf(upstreams.lan), ['registry.lan:5000']);
    assert.deepEqual(hostsOf(upstreams.tls), ['secure.lan']);
  });
  const owners: Array<[string, string | undefined]> = [
    ['docker.io', 'hub'], ['INDEX.docker.io', 'hub'], ['registry.lan:5000', 'lan'], ['registry.lan', undefined],
    ['secure.lan', 'tls'], ['quay.io', undefined],
  ];
  for (const [host, key] of owners) {
    it(`finds ${String(key)} serving ${host}`, () => assert.equal(upstreamForHost(upstreams, host), key));
  }
});
