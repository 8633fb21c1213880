import assert from 'node:assert/strict';
import { isRegistryError } from '../../../lib/oci/errors.ts';
import { familiarImageRef, formatImageRef, mirrorRepository, parseImageRef, withDefaultTag, type ImageRef } from '../../../lib/rewrite/image-ref.ts';

const D = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('rewrite/image-ref', () => {
  const parses: Array<[string, ImageRef]> = [
    ['ubuntu', { host: 'docker.io', repository: 'library/ubuntu' }],
    ['ubuntu:24.04', { host: 'docker.io', repository: 'library/ubuntu', tag: '24.04' }],
    ['library/ubuntu', { host: 'docker.io', repository: 'library/ubuntu' }],
    ['docker.io/ubuntu', { host: 'docker.io', repository: 'library/ubuntu' }],
    ['index.docker.io/ubuntu:latest', { host: 'docker.io', repository: 'library/ubuntu', tag: 'latest' }],
    ['kolla/centos-binary-nova-api:2.0.2', { host: 'docker.io', repository: 'kolla/centos-binary-nova-api', tag: '2.0.2' }],
    [`kolla/centos-binary-nova-api@${D}`, { host: 'docker.io', repository: 'kolla/centos-binary-nova-api', digest: D }],
    [`kolla/centos-binary-nova-api:2.0.2@${D}`, { host: 'docker.io', repository: 'kolla/centos-binary-nova-api', tag: '2.0.2', digest: D }],
    ['quay.io/openstack.kolla/nova-api:2025.1-rocky-9', { host: 'quay.io', repository: 'openstack.kolla/nova-api', tag: '2025.1-rocky-9' }],
    ['quay.io/x', { host: 'quay.io', repository: 'x' }],
    ['localhost:4000/x:y', { host: 'localhost:4000', repository: 'x', tag: 'y' }],
    ['localhost/x', { host: 'localhost', repository: 'x' }],
    ['localhost:4000/a/b/c', { host: 'localhost:4000', repository: 'a/b/c' }],
    ['192.0.2.1:4000/kolla/ubuntu-source-base:2.0.2', { host: '192.0.2.1:4000', repository: 'kolla/ubuntu-source-base', tag: '2.0.2' }],
    ['[::1]:5000/app:v1', { host: '[::1]:5000', repository: 'app', tag: 'v1' }],
    ['Registry.Example.com/app', { host: 'registry.example.com', repository: 'app' }],
    ['openstack.kolla/nova-api', { host: 'openstack.kolla', repository: 'nova-api' }],
    ['localhost', { host: 'docker.io', repository: 'library/localhost' }],
    ['my-registry/x', { host: 'docker.io', repository: 'my-registry/x' }],
  ];
  for (const [input, expected] of parses) {
    it(`parses ${input}`, () => assert.deepEqual(parseImageRef(input), expected));
  }

  const refusals: Array<[string, string]> = [
    ['', 'NAME_INVALID'],
    ['Ubuntu', 'NAME_INVALID'],
    ['quay.io/Coreos/etcd', 'NAME_INVALID'],
    ['ubuntu:', 'TAG_INVALID'],
    ['ubuntu:-x', 'TAG_INVALID'],
    ['ubuntu@sha256:abc', 'DIGEST_INVALID'],
    ['ubuntu@md5:0123456789abcdef0123456789abcdef', 'DIGEST_INVALID'],
    [':latest', 'NAME_INVALID'],
    ['a//b', 'NAME_INVALID'],
    ['-bad.host/x', 'NAME_INVALID'],
    ['host:port/x', 'NAME_INVALID'],
    ['0123456789abcdef'.repeat(4), 'NAME_INVALID'],
    [`quay.io/${'a'.repeat(250)}`, 'NAME_INVALID'],
  ];
  for (const [input, code] of refusals) {
    it(`refuses ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}...` : input)} with ${code}`, () => {
      assert.throws(() => parseImageRef(input), (e: unknown) => isRegistryError(e) && e.code === code);
    });
  }

  it('adds :latest only when there is neither tag nor digest, as Docker pulls', () => {
    assert.equal(withDefaultTag(parseImageRef('ubuntu')).tag, 'latest');
    assert.equal(withDefaultTag(parseImageRef('ubuntu:22.04')).tag, '22.04');
    assert.equal(withDefaultTag(parseImageRef(`ubuntu@${D}`)).tag, undefined);
  });

  const forms: Array<[string, string, string]> = [
    ['ubuntu', 'docker.io/library/ubuntu', 'ubuntu'],
    ['library/ubuntu:24.04', 'docker.io/library/ubuntu:24.04', 'ubuntu:24.04'],
    ['library/a/b', 'docker.io/library/a/b', 'library/a/b'],
    ['kolla/centos-binary-base:2.0.2', 'docker.io/kolla/centos-binary-base:2.0.2', 'kolla/centos-binary-base:2.0.2'],
    [`quay.io/openstack.kolla/base:2025.1-rocky-9@${D}`, `quay.io/openstack.kolla/base:2025.1-rocky-9@${D}`, `quay.io/openstack.kolla/base:2025.1-rocky-9@${D}`],
  ];
  for (const [input, canonical, familiar] of forms) {
    it(`writes ${input} back as ${canonical} and ${familiar}`, () => {
      const ref = parseImageRef(input);
      assert.equal(formatImageRef(ref), canonical);
      assert.equal(familiarImageRef(ref), familiar);
      assert.deepEqual(parseImageRef(formatImageRef(ref)), ref);
    });
  }

  const mirrored: Array<[string, string]> = [
    ['ubuntu', 'library/ubuntu'],
    ['kolla/centos-binary-nova-api:2.0.2', 'kolla/centos-binary-nova-api'],
    ['quay.io/openstack.kolla/nova-api:2025.1-rocky-9', 'quay.io/openstack.kolla/nova-api'],
  ];
  for (const [input, repository] of mirrored) {
    it(`asks a mirror for ${input} as ${repository}`, () => assert.equal(mirrorRepository(parseImageRef(input)), repository));
  }
  it('refuses to name a host with a port through a mirror', () => {
    assert.throws(() => mirrorRepository(parseImageRef('localhost:5000/x')), (e: unknown) => isRegistryError(e) && e.code === 'NAME_INVALID');
  });
});
