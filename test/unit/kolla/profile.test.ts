import assert from 'node:assert/strict';
import { expandProfile, kollaProfiles, loadKollaData, resolveKollaRelease, type KollaData } from '../../../lib/kolla/profile.ts';

describe('kolla/profile', () => {
  // Images and every profile's size (with parents) per series, computed independently with
  // Python's re.search over shared/kolla/images.json; default matches shared/kolla/README.md's table.
  const SERIES: Array<[string, number, Record<string, number>]> = [
    ['mitaka', 118, { infra: 20, main: 49, aux: 34, default: 41, gate: 36, mesos: 9 }],
    ['newton', 155, { infra: 24, main: 60, aux: 64, default: 51, gate: 46 }],
    ['ocata', 207, { infra: 27, main: 59, aux: 104, default: 52, gate: 48 }],
    ['pike', 250, { infra: 38, main: 66, aux: 121, default: 60, gate: 54 }],
    ['queens', 264, { infra: 44, main: 65, aux: 129, default: 61, gate: 56 }],
    ['rocky', 276, { infra: 47, main: 66, aux: 133, default: 63, gate: 58 }],
    ['stein', 288, { infra: 48, main: 67, aux: 135, default: 64, gate: 59 }],
    ['train', 299, { infra: 59, main: 64, aux: 141, default: 62, gate: 57 }],
    ['ussuri', 273, { infra: 51, main: 65, aux: 136, default: 66 }],
    ['victoria', 263, { infra: 47, main: 61, aux: 133, default: 62 }],
    ['wallaby', 238, { infra: 42, main: 59, aux: 115, default: 59 }],
    ['xena', 234, { infra: 43, main: 59, aux: 112, default: 59 }],
    ['yoga', 237, { infra: 46, main: 59, aux: 112, default: 59 }],
    ['zed', 227, { infra: 39, main: 59, aux: 103, default: 60 }],
    ['2023.1', 230, { infra: 38, main: 60, aux: 103, default: 63 }],
    ['2023.2', 230, { infra: 37, main: 60, aux: 104, default: 60 }],
    ['2024.1', 205, { infra: 37, main: 60, aux: 79, default: 60 }],
    ['2024.2', 204, { infra: 37, main: 60, aux: 79, default: 60 }],
    ['2025.1', 201, { infra: 38, main: 52, aux: 79, default: 60 }],
    ['2025.2', 194, { infra: 34, main: 52, aux: 79, default: 56 }],
    ['2026.1', 184, { infra: 34, main: 53, aux: 72, default: 57 }],
    ['master', 187, { infra: 34, main: 53, aux: 75, default: 57 }],
  ];

  it('ships the image lists of every series, mitaka to 2026.1 and master (22)', () => {
    const data = loadKollaData();
    assert.deepEqual(Object.keys(data).map((k) => k.split(' ')[0]), SERIES.map(([s]) => s));
    for (const [series, images] of SERIES) assert.equal(Object.keys(data[resolveKollaRelease(series)]!.images).length, images, series);
  });

  for (const [series, , profiles] of SERIES) {
    it(`expands every build profile of ${series} as Kolla does (${JSON.stringify(profiles)})`, () => {
      assert.deepEqual(kollaProfiles(series), Object.keys(profiles));
      for (const [profile, n] of Object.entries(profiles)) assert.equal(expandProfile(series, profile).length, n, `${series} ${profile}`);
    });
  }

  const aliases: Array<[string, string]> = [
    ['mitaka (mitaka-eol)', 'mitaka (mitaka-eol)'],
    ['2.0.2', 'mitaka (mitaka-eol)'],
    ['mitaka', 'mitaka (mitaka-eol)'],
    ['stable/mitaka', 'mitaka (mitaka-eol)'],
    ['2.0.1', 'mitaka (mitaka-eol)'],
    ['Wallaby', 'wallaby (wallaby-eol)'],
    ['12.0.0', 'wallaby (wallaby-eol)'],
    ['zed', 'zed (zed-eol)'],
    ['bobcat', '2023.2 (2023.2-eol)'],
    ['stable/2024.1', '2024.1 (unmaintained/2024.1)'],
    ['2024.2', '2024.2 (2024.2-eol)'],
    ['stable/2025.1', '2025.1 (stable/2025.1)'],
    ['2025.1', '2025.1 (stable/2025.1)'],
    ['epoxy', '2025.1 (stable/2025.1)'],
    ['20.1.0', '2025.1 (stable/2025.1)'],
    ['gazpacho', '2026.1 (stable/2026.1)'],
    ['master', 'master (master)'],
  ];
  for (const [release, key] of aliases) {
    it(`finds the image list of ${release} under ${key}`, () => assert.equal(resolveKollaRelease(release), key));
  }
  it('answers a release it has no list for with the series it knows, and the close ones', () => {
    assert.throws(() => resolveKollaRelease('liberty'), /no Kolla image list for release "liberty"; known: mitaka, newton, .*, 2026\.1, master$/);
    assert.throws(() => resolveKollaRelease('2027.1'), /no Kolla image list for release "2027\.1"; did you mean "202\d\.1"/);
  });

  it('answers a mistyped release in one line that says what was meant', () => {
    assert.throws(() => resolveKollaRelease('walaby'), (e: Error) => e.name === 'KollaError' && /did you mean "wallaby"\?/.test(e.message) && !e.message.includes('\n'));
    assert.throws(() => resolveKollaRelease('mastr'), /did you mean "master"\?/);
  });

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

  it('keeps mitaka aux\'s odd "trove,zaqar" entry, which matches neither trove nor zaqar', () => {
    assert.ok(loadKollaData()['mitaka (mitaka-eol)']?.profiles.aux?.includes('trove,zaqar'));
    const aux = expandProfile('mitaka', 'aux');
    assert.ok(!aux.some((name) => name.startsWith('trove') || name === 'zaqar'));
    assert.ok(aux.includes('zookeeper') && aux.includes('magnum-api'));
  });

  it('puts parents before children', () => {
    const data = loadKollaData();
    for (const release of Object.keys(data)) {
      const images = expandProfile(release, 'default');
      const parents = data[release]?.images ?? {};
      images.forEach((name, i) => {
        const parent = parents[name];
        if (parent) assert.ok(images.indexOf(parent) >= 0 && images.indexOf(parent) < i, `${parent} before ${name}`);
      });
      assert.equal(images[0], 'base', release);
    }
  });

  it('answers an unknown profile with the known ones', () => {
    assert.throws(() => expandProfile('2.0.2', 'nope'), /^KollaError: Kolla mitaka has no build profile "nope"; known: infra, main, aux, default, gate, mesos$/);
  });

  it('answers a mistyped profile with the one meant', () => {
    assert.throws(() => expandProfile('2025.1', ['default', 'defualt']), /^KollaError: Kolla 2025\.1 has no build profile "defualt"; did you mean "default"\? \(known: infra, main, aux, default\)$/);
  });

  it('lists the profiles of a release', () => assert.deepEqual(kollaProfiles('2025.1'), ['infra', 'main', 'aux', 'default']));

  it('expands against given data, searching regexes anywhere in the name and following parents', () => {
    const data: KollaData = {
      '9.9.9': { profiles: { p: ['^b$', 'x'] }, images: { root: null, a: 'root', b: 'a', c: 'root', xyz: 'c', bb: 'root' } },
    };
    assert.deepEqual(expandProfile('9.9.9', 'p', data), ['root', 'a', 'c', 'b', 'xyz']);
  });
});
