import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { expandProfile, kollaProfiles, loadKollaData, resolveKollaRelease, type KollaData } from '../../../lib/kolla/profile.ts';

describe('kolla/profile', () => {
  it('ships the image lists of 2.0.2 (mitaka) and stable/2025.1', () => {
    const data = loadKollaData();
    assert.deepEqual(Object.keys(data), ['2.0.2 (mitaka)', 'stable/2025.1']);
    assert.equal(Object.keys(data['2.0.2 (mitaka)']?.images ?? {}).length, 117);
    assert.equal(Object.keys(data['stable/2025.1']?.images ?? {}).length, 201);
  });

  const aliases: Array<[string, string]> = [
    ['2.0.2 (mitaka)', '2.0.2 (mitaka)'],
    ['2.0.2', '2.0.2 (mitaka)'],
    ['mitaka', '2.0.2 (mitaka)'],
    ['stable/mitaka', '2.0.2 (mitaka)'],
    ['2.0.1', '2.0.2 (mitaka)'],
    ['stable/2025.1', 'stable/2025.1'],
    ['2025.1', 'stable/2025.1'],
    ['epoxy', 'stable/2025.1'],
    ['20.1.0', 'stable/2025.1'],
  ];
  for (const [release, key] of aliases) {
    it(`finds the image list of ${release} under ${key}`, () => assert.equal(resolveKollaRelease(release), key));
  }
  for (const release of ['wallaby', '2024.2', 'nonsense', '']) {
    it(`says which lists it knows when there is none for ${JSON.stringify(release)}`, () => {
      assert.throws(() => resolveKollaRelease(release), /known: 2\.0\.2 \(mitaka\), stable\/2025\.1/);
    });
  }

  // Counts computed independently with Python's re.search over /work/shared/kolla/images.json.
  const counts: Array<[string, string | string[], number]> = [
    ['2.0.2', 'default', 41],
    ['2.0.2', 'infra', 20],
    ['2.0.2', 'main', 48],
    ['2.0.2', 'aux', 34],
    ['2.0.2', 'gate', 36],
    ['2.0.2', 'mesos', 9],
    ['stable/2025.1', 'default', 60],
    ['stable/2025.1', 'infra', 38],
    ['stable/2025.1', 'main', 52],
    ['stable/2025.1', 'aux', 79],
    ['stable/2025.1', ['default', 'aux'], 133],
  ];
  for (const [release, profile, n] of counts) {
    it(`expands ${release} ${JSON.stringify(profile)} to ${n} images`, () => assert.equal(expandProfile(release, profile).length, n));
  }

  it('holds the images of 2.0.2 default and their parents', () => {
    const images = expandProfile('2.0.2', 'default');
    for (const name of ['base', 'openstack-base', 'nova-base', 'nova-api', 'nova-compute', 'neutron-server', 'heka', 'kolla-toolbox', 'openvswitch-db-server', 'rabbitmq']) {
      assert.ok(images.includes(name), name);
    }
    for (const name of ['cinder-api', 'swift-base', 'ceph-mon', 'mongodb']) assert.ok(!images.includes(name), name);
  });

  it('holds the images of 2025.1 default and their parents, as Kolla matches them', () => {
    const images = expandProfile('stable/2025.1', 'default');
    for (const name of ['base', 'openstack-base', 'nova-base', 'nova-api', 'placement-api', 'proxysql', 'fluentd']) {
      assert.ok(images.includes(name), name);
    }
    // `keystone` is searched, not anchored: barbican-keystone-listener comes in, and its parent.
    assert.ok(images.includes('barbican-keystone-listener') && images.includes('barbican-base'));
    // `nova-` does not match a bare `nova` image name, and cinder is not in default.
    assert.ok(!images.includes('cinder-api'));
  });

  it('keeps 2.0.2 aux\'s odd "trove,zaqar" entry, which matches neither trove nor zaqar', () => {
    assert.ok(loadKollaData()['2.0.2 (mitaka)']?.profiles.aux?.includes('trove,zaqar'));
    const aux = expandProfile('mitaka', 'aux');
    assert.ok(!aux.some((name) => name.startsWith('trove') || name === 'zaqar'));
    assert.ok(aux.includes('zookeeper') && aux.includes('magnum-api'));
  });

  it('puts parents before children', () => {
    const data = loadKollaData();
    for (const release of ['2.0.2 (mitaka)', 'stable/2025.1']) {
      const images = expandProfile(release, 'default');
      const parents = data[release]?.images ?? {};
      images.forEach((name, i) => {
        const parent = parents[name];
        if (parent) assert.ok(images.indexOf(parent) >= 0 && images.indexOf(parent) < i, `${parent} before ${name}`);
      });
      assert.equal(images[0], 'base');
    }
  });

  it('answers an unknown profile with the known ones', () => {
    assert.throws(() => expandProfile('2.0.2', 'nope'), /no profile "nope"; known: infra, main, aux, default, gate, mesos/);
  });

  it('lists the profiles of a release', () => assert.deepEqual(kollaProfiles('2025.1'), ['infra', 'main', 'aux', 'default']));

  it('expands against given data, searching regexes anywhere in the name and following parents', () => {
    const data: KollaData = {
      '9.9.9': { profiles: { p: ['^b$', 'x'] }, images: { root: null, a: 'root', b: 'a', c: 'root', xyz: 'c', bb: 'root' } },
    };
    assert.deepEqual(expandProfile('9.9.9', 'p', data), ['root', 'a', 'c', 'b', 'xyz']);
  });

  it('ships the same data as shared/kolla/images.json', function () {
    let shared: string;
    try {
      shared = readFileSync(new URL('../../../../shared/kolla/images.json', import.meta.url), 'utf8');
    } catch {
      this.skip(); // the shared folder sits beside the repository only in the project workspace
    }
    assert.deepEqual(loadKollaData(), JSON.parse(shared));
  });
});
