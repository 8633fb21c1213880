import assert from 'node:assert/strict';
import { kollaImageRef, kollaImageRefs, type KollaNamingOptions } from '../../../lib/kolla/naming.ts';
import { parseKollaRelease, type KollaRelease } from '../../../lib/kolla/releases.ts';

describe('kolla/releases', () => {
  const releases: Array<[string, KollaRelease]> = [
    ['1.1.0', { series: 'liberty', version: '1.1.0', era: 'kollaglue' }],
    ['2.0.0', { series: 'mitaka', version: '2.0.0', era: 'kollaglue' }],
    ['2.0.1', { series: 'mitaka', version: '2.0.1', era: 'kollaglue' }],
    ['2.0.2', { series: 'mitaka', version: '2.0.2', era: 'kolla' }],
    ['mitaka', { series: 'mitaka', version: '2.0.2', era: 'kolla' }],
    ['stable/mitaka', { series: 'mitaka', version: '2.0.2', era: 'kolla' }],
    ['3.0.0', { series: 'newton', version: '3.0.0', era: 'kolla' }],
    ['Wallaby', { series: 'wallaby', era: 'kolla' }],
    ['12.0.0', { series: 'wallaby', version: '12.0.0', era: 'kolla' }],
    ['xena', { series: 'xena', era: 'quay-prefixed' }],
    ['14.1.0', { series: 'yoga', version: '14.1.0', era: 'quay-prefixed' }],
    ['zed', { series: 'zed', era: 'quay' }],
    ['antelope', { series: '2023.1', era: 'quay' }],
    ['stable/2025.1', { series: '2025.1', era: 'quay' }],
    ['20.0.0', { series: '2025.1', version: '20.0.0', era: 'quay' }],
    ['2027.2', { series: '2027.2', era: 'quay' }],
    ['master', { series: 'master', era: 'quay' }],
  ];
  for (const [input, expected] of releases) {
    it(`reads ${input} as ${expected.series} in the ${expected.era} era`, () => assert.deepEqual(parseKollaRelease(input), expected));
  }
  for (const input of ['', 'kilo', '99.0.0', '2025.3', 'stable/']) {
    it(`refuses ${JSON.stringify(input)}`, () => assert.throws(() => parseKollaRelease(input), /unknown Kolla/));
  }
});

describe('kolla/naming', () => {
  const refs: Array<[string, string, KollaNamingOptions, string]> = [
    ['names Mitaka 2.0.0-2.0.1 images kollaglue/{distro}-{type}-{image}:{release}',
      'heka', { release: '2.0.1', distro: 'centos', installType: 'source' }, 'kollaglue/centos-source-heka:2.0.1'],
    ['names 2.0.2 images kolla/{distro}-{type}-{image}:{tag}, binary by default',
      'nova-api', { release: '2.0.2', distro: 'centos' }, 'kolla/centos-binary-nova-api:2.0.2'],
    ['names Mitaka by series like 2.0.2',
      'nova-api', { release: 'mitaka', distro: 'ubuntu', installType: 'source' }, 'kolla/ubuntu-source-nova-api:2.0.2'],
    ['tags a series given by name with that name',
      'nova-api', { release: 'stable/wallaby', distro: 'centos' }, 'kolla/centos-binary-nova-api:wallaby'],
    ['puts the mirror in front when docker_registry is set',
      'nova-api', { release: '2.0.2', distro: 'centos', registry: '192.0.2.1:4000' }, '192.0.2.1:4000/kolla/centos-binary-nova-api:2.0.2'],
    ['takes a namespace and tag override',
      'base', { release: '2.0.2', distro: 'centos', namespace: 'kollaglue', tag: '2.0.2-custom' }, 'kollaglue/centos-binary-base:2.0.2-custom'],
    ['names Xena images on quay.io/openstack.kolla, still prefixed',
      'nova-api', { release: 'xena', distro: 'centos' }, 'quay.io/openstack.kolla/centos-binary-nova-api:xena'],
    ['names Yoga images source by default',
      'nova-api', { release: 'yoga', distro: 'ubuntu' }, 'quay.io/openstack.kolla/ubuntu-source-nova-api:yoga'],
    ['names 2025.1 images {image}:{release}-{distro}-{version}',
      'nova-api', { release: 'stable/2025.1', distro: 'rocky' }, 'quay.io/openstack.kolla/nova-api:2025.1-rocky-9'],
    ['knows 2025.2 on Rocky is Rocky 10 (kolla-ansible\'s default)',
      'nova-api', { release: '2025.2', distro: 'rocky' }, 'quay.io/openstack.kolla/nova-api:2025.2-rocky-10'],
    ['names master on Rocky 10',
      'nova-api', { release: 'master', distro: 'rocky' }, 'quay.io/openstack.kolla/nova-api:master-rocky-10'],
    ['knows 2025.1 runs Ubuntu noble',
      'nova-api', { release: '2025.1', distro: 'ubuntu' }, 'quay.io/openstack.kolla/nova-api:2025.1-ubuntu-noble'],
    ['knows Zed runs Debian bullseye',
      'nova-api', { release: 'zed', distro: 'debian' }, 'quay.io/openstack.kolla/nova-api:zed-debian-bullseye'],
    ['ignores the install type from Zed on and takes the distro version given',
      'base', { release: 'epoxy', distro: 'ubuntu', installType: 'binary', distroVersion: 'jammy' }, 'quay.io/openstack.kolla/base:2025.1-ubuntu-jammy'],
    ['uses the series, not the version, in a Zed+ tag',
      'base', { release: '20.0.0', distro: 'rocky' }, 'quay.io/openstack.kolla/base:2025.1-rocky-9'],
    ['names Zed+ images on a local registry, as kolla-ansible asks for them',
      'nova-api', { release: '2025.1', distro: 'rocky', registry: 'mirror.lan:4000' }, 'mirror.lan:4000/openstack.kolla/nova-api:2025.1-rocky-9'],
    ['leaves the registry out when given as empty',
      'nova-api', { release: '2025.1', distro: 'rocky', registry: '' }, 'openstack.kolla/nova-api:2025.1-rocky-9'],
  ];
  for (const [spec, image, opts, expected] of refs) {
    it(spec, () => assert.equal(kollaImageRef(image, opts), expected));
  }

  it('asks for the distro version where it does not know the release default', () => {
    assert.throws(() => kollaImageRef('base', { release: '2025.2', distro: 'ubuntu' }), /give the distro version/);
    assert.throws(() => kollaImageRef('base', { release: '2025.1', distro: 'centos' }), /give the distro version/);
  });

  it('refuses options that make no valid reference', () => {
    assert.throws(() => kollaImageRef('base', { release: '2.0.2', distro: 'CentOS' }), /must be lowercase/);
  });

  it('names the 41 images of 2.0.2 default, parents first', () => {
    const refs = kollaImageRefs({ release: '2.0.2', profile: 'default', distro: 'centos' });
    assert.equal(refs.length, 41);
    assert.equal(refs[0], 'kolla/centos-binary-base:2.0.2');
    assert.ok(refs.indexOf('kolla/centos-binary-openstack-base:2.0.2') < refs.indexOf('kolla/centos-binary-nova-base:2.0.2'));
    assert.ok(refs.indexOf('kolla/centos-binary-nova-base:2.0.2') < refs.indexOf('kolla/centos-binary-nova-api:2.0.2'));
  });

  it('names the 60 images of 2025.1 default on quay.io', () => {
    const refs = kollaImageRefs({ release: 'stable/2025.1', profile: 'default', distro: 'rocky' });
    assert.equal(refs.length, 60);
    assert.equal(refs[0], 'quay.io/openstack.kolla/base:2025.1-rocky-9');
    assert.ok(refs.includes('quay.io/openstack.kolla/openstack-base:2025.1-rocky-9'));
    assert.ok(refs.includes('quay.io/openstack.kolla/nova-api:2025.1-rocky-9'));
  });

  it('uses the Mitaka image list for 2.0.1, with kollaglue names', () => {
    const refs = kollaImageRefs({ release: '2.0.1', profile: ['default'], distro: 'centos', installType: 'source' });
    assert.equal(refs.length, 41);
    assert.ok(refs.includes('kollaglue/centos-source-heka:2.0.1'));
  });

  it('uses another release\'s image list when told to', () => {
    const refs = kollaImageRefs({ release: '2024.2', imageList: '2025.1', profile: 'default', distro: 'ubuntu' });
    assert.equal(refs.length, 60);
    assert.ok(refs.includes('quay.io/openstack.kolla/nova-api:2024.2-ubuntu-noble'));
  });

  it('says which image lists it has for a release without one', () => {
    assert.throws(() => kollaImageRefs({ release: 'liberty', profile: 'default', distro: 'centos' }), /no Kolla image list for release "liberty"; known: mitaka, newton/);
  });

  it('names the 59 images of wallaby default, kolla/centos-binary-*:wallaby (was refused with two lists shipped)', () => {
    const refs = kollaImageRefs({ release: 'wallaby', profile: 'default', distro: 'centos' });
    assert.equal(refs.length, 59);
    assert.ok(refs.includes('kolla/centos-binary-nova-api:wallaby'));
  });
});
