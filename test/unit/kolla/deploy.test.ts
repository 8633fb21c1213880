/**
 * What `kolla-ansible pull` pulls for an operator's globals.yml and inventory, checked against
 * kolla-ansible's own answer for a default multinode deploy (deploy.json's summary, computed from
 * its tree) in every series, and against what a setting must change.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKollaDeploy, selectDeployImages } from '../../../lib/kolla/deploy.ts';
import { parseKollaGlobals } from '../../../lib/kolla/globals.ts';
import { parseInventory } from '../../../lib/kolla/inventory.ts';
import { kollaPullList, pullListThroughMirror } from '../../../lib/kolla/pull-list.ts';

const data = loadKollaDeploy();
const names = (refs: Array<{ image: string }>): string[] => refs.map((r) => r.image).sort();

// kolla-ansible's shipped globals.yml for 2025.1, its uncommented lines plus what an operator must set.
const GLOBALS_2025_1 = `---
workaround_ansible_issue_8743: yes
kolla_base_distro: "rocky"
openstack_release: "2025.1"
kolla_internal_vip_address: "192.0.2.254"
network_interface: "eth0"
neutron_external_interface: "eth1"
`;

describe('kolla/deploy: what kolla-ansible pull pulls', () => {
  it('has deploy facts for every series, mitaka to 2026.1 and master (22)', () => {
    assert.deepEqual(Object.keys(data), ['mitaka', 'newton', 'ocata', 'pike', 'queens', 'rocky', 'stein', 'train', 'ussuri', 'victoria', 'wallaby', 'xena', 'yoga', 'zed', '2023.1', '2023.2', '2024.1', '2024.2', '2025.1', '2025.2', '2026.1', 'master']);
  });

  for (const [series, facts] of Object.entries(data)) {
    it(`${series}: a default multinode deploy pulls exactly deploy.json's ${facts.summary.images_default_count} images, a compute node its ${facts.summary.images_compute_count}, each on its node groups`, () => {
      // ocata-stein tag with the installed kolla-ansible's version ("auto"): the operator gives it.
      const vars: Record<string, string> = facts.defaults.openstack_release === 'auto' ? { openstack_release: '9.9.9' } : {};
      const all = selectDeployImages({ release: series, vars });
      const tag = all.images[0]!.ref.split(':').pop()!;
      const expected = (refs: string[]): string[] => refs.map((r) => r.replace(/:(auto|<tag unresolved>)$/, `:${tag}`)).sort();
      assert.equal(all.images.length, facts.summary.images_default_count);
      assert.deepEqual(all.images.map((i) => i.ref).sort(), expected(facts.summary.images_default));
      assert.deepEqual(names(all.images), [...facts.summary.image_names_default].sort());
      const compute = selectDeployImages({ release: series, vars, group: 'compute' });
      assert.deepEqual(compute.images.map((i) => i.ref).sort(), expected(facts.summary.images_compute));
      // each image names the node groups whose hosts run it, as deploy.json's containers say
      const nodeGroups = new Map<string, Set<string>>();
      for (const c of facts.containers.filter((x) => x.default_deploy)) nodeGroups.set(c.image, new Set([...(nodeGroups.get(c.image) ?? []), ...c.node_groups]));
      for (const i of all.images) assert.deepEqual(i.groups, [...nodeGroups.get(i.image)!].sort(), i.image);
    });
  }

  it('reads a default 2025.1 globals.yml to the 32 images of deploy.json, and prints the count', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-kolla-'));
    try {
      await writeFile(join(dir, 'globals.yml'), GLOBALS_2025_1);
      const list = await kollaPullList({ globalsFile: join(dir, 'globals.yml') });
      assert.equal(list.images.length, 32);
      assert.deepEqual(list.images.map((i) => i.ref), [...data['2025.1']!.summary.images_default].sort());
      assert.match(list.summary, /^kolla-ansible 2025\.1 deploy \(globals .*globals\.yml, inventory kolla-ansible 2025\.1 multinode, all groups\): 32 images$/);
      assert.deepEqual(list.warnings, []);
      assert.deepEqual(list.images.find((i) => i.image === 'nova-compute')?.groups, ['compute']);
      assert.deepEqual(list.images.find((i) => i.image === 'neutron-openvswitch-agent')?.groups, ['compute', 'network']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const base = names(selectDeployImages({ release: '2025.1' }).images);
  const changes: Array<[string, string, string[], string[]]> = [
    ['enable_cinder: yes adds cinder', 'enable_cinder: yes', ['cinder-api', 'cinder-backup', 'cinder-scheduler', 'cinder-volume'], []],
    ['enable_cinder: true with the LVM backend adds iscsid and tgtd too', 'enable_cinder: true\nenable_cinder_backend_lvm: "yes"', ['cinder-api', 'cinder-backup', 'cinder-scheduler', 'cinder-volume', 'iscsid', 'tgtd'], []],
    ['enable_cinder_backup: no (with cinder) leaves cinder-backup out', 'enable_cinder: "yes"\nenable_cinder_backup: "no"', ['cinder-api', 'cinder-scheduler', 'cinder-volume'], []],
    ['enable_heat: false takes heat out', 'enable_heat: false', [], ['heat-api', 'heat-api-cfn', 'heat-engine']],
    ['nova_console: spice swaps the console proxy', 'nova_console: spice', ['nova-spicehtml5proxy'], ['nova-novncproxy']],
    ['neutron_plugin_agent: ovn swaps openvswitch agents for OVN', 'neutron_plugin_agent: "ovn"', ['ovn-controller', 'ovn-nb-db-server', 'ovn-northd', 'ovn-sb-db-relay', 'ovn-sb-db-server'], ['neutron-dhcp-agent', 'neutron-l3-agent', 'neutron-openvswitch-agent']],
    ['enable_central_logging: yes brings opensearch', 'enable_central_logging: "yes"', ['opensearch', 'opensearch-dashboards'], []],
    ['enable_openstack_core: no takes the core services out', 'enable_openstack_core: "no"', [], ['glance-api', 'heat-api', 'heat-api-cfn', 'heat-engine', 'horizon', 'keystone', 'keystone-fernet', 'keystone-ssh', 'neutron-dhcp-agent', 'neutron-l3-agent', 'neutron-metadata-agent', 'neutron-openvswitch-agent', 'neutron-server', 'nova-api', 'nova-compute', 'nova-conductor', 'nova-libvirt', 'nova-novncproxy', 'nova-scheduler', 'nova-ssh', 'openvswitch-db-server', 'openvswitch-vswitchd', 'placement-api']],
  ];
  for (const [spec, yml, added, removed] of changes) {
    it(spec, () => {
      const got = names(selectDeployImages({ vars: parseKollaGlobals(`openstack_release: "2025.1"\n${yml}\n`, 'globals.yml') }).images);
      assert.deepEqual(got.filter((i) => !base.includes(i)), added);
      assert.deepEqual(base.filter((i) => !got.includes(i)), removed);
    });
  }

  // [spec, globals.yml, a reference it must give, --kolla-release]
  const refs: Array<[string, string, string, string?]> = [
    ['mitaka (kolla-ansible 2.0.3\'s default tag): kolla/centos-binary-*', '', 'kolla/centos-binary-nova-api:2.0.3', 'mitaka'],
    ['openstack_release taken as the tag, as kolla-ansible does', 'openstack_release: "mitaka"', 'kolla/centos-binary-nova-api:mitaka'],
    ['mitaka 2.0.1: kollaglue/centos-binary-*', 'openstack_release: "2.0.1"', 'kollaglue/centos-binary-nova-api:2.0.1'],
    ['mitaka 2.0.2 source on ubuntu', 'openstack_release: "2.0.2"\nkolla_base_distro: ubuntu\nkolla_install_type: source', 'kolla/ubuntu-source-nova-api:2.0.2'],
    ['pike: the installed kolla-ansible version as tag', 'openstack_release: 5.0.6', 'kolla/centos-binary-nova-api:5.0.6'],
    ['train on CentOS 8 Stream hosts: the tag suffix given', 'openstack_release: train\nopenstack_tag_suffix: "-centos8s"', 'kolla/centos-binary-nova-api:train-centos8s'],
    ['wallaby: kolla/centos-binary-*:wallaby', 'openstack_release: wallaby', 'kolla/centos-binary-nova-api:wallaby'],
    ['xena: quay.io/openstack.kolla, still distro-type prefixed, source by default', 'openstack_release: xena', 'quay.io/openstack.kolla/centos-source-nova-api:xena'],
    ['yoga on a local registry', 'openstack_release: yoga\ndocker_registry: "192.0.2.10:4000"', '192.0.2.10:4000/openstack.kolla/centos-source-nova-api:yoga'],
    ['zed: no prefix, {release}-{distro}-{version}', 'openstack_release: zed', 'quay.io/openstack.kolla/nova-api:zed-rocky-9'],
    ['2024.2 with docker_image_name_prefix', 'openstack_release: "2024.2"\ndocker_image_name_prefix: "kolla-"', 'quay.io/openstack.kolla/kolla-nova-api:2024.2-rocky-9'],
    ['2025.1 on ubuntu: noble', 'openstack_release: "2025.1"\nkolla_base_distro: ubuntu', 'quay.io/openstack.kolla/nova-api:2025.1-ubuntu-noble'],
    ['2025.1 through the mirror, own namespace, tag suffix', 'openstack_release: "2025.1"\ndocker_registry: mirror.lan:4000\ndocker_namespace: kolla\nopenstack_tag_suffix: "-aarch64"', 'mirror.lan:4000/kolla/nova-api:2025.1-rocky-9-aarch64'],
    ['2025.1 with openstack_tag', 'openstack_release: "2025.1"\nopenstack_tag: "2025.1-rocky-9-20250601"', 'quay.io/openstack.kolla/nova-api:2025.1-rocky-9-20250601'],
    ['2025.2 and master: Rocky 10', 'openstack_release: master', 'quay.io/openstack.kolla/nova-api:master-rocky-10'],
  ];
  for (const [spec, yml, ref, release] of refs) {
    it(`names images as kolla-ansible does: ${spec}`, () => {
      const got = selectDeployImages({ release, vars: parseKollaGlobals(yml, 'globals.yml') }).images.map((i) => i.ref);
      assert.ok(got.includes(ref), `${ref} in ${got.slice(0, 3).join(', ')} ...`);
      const [repo] = ref.split(':') as [string];
      const prefix = repo.slice(0, repo.lastIndexOf('/') + 1);
      for (const r of got) assert.ok(r.startsWith(prefix) && r.endsWith(`:${ref.split(':').pop()!}`), r);
    });
  }

  it('asks for the version where kolla-ansible tags with the installed one (ocata-stein "auto")', () => {
    assert.throws(() => selectDeployImages({ release: 'pike' }), /kolla-ansible pike tags images with the installed kolla-ansible's version \(openstack_release: auto\): set openstack_release in globals\.yml or give --kolla-release VERSION \(e\.g\. 5\.0\.6\)/);
    assert.equal(selectDeployImages({ release: '5.0.6' }).images[0]!.ref.split(':').pop(), '5.0.6');
  });

  it('lets --kolla-release override globals\' openstack_release', () => {
    const vars = parseKollaGlobals('openstack_release: "2025.1"', 'g');
    assert.ok(selectDeployImages({ release: '2025.2', vars }).images.every((i) => i.ref.endsWith(':2025.2-rocky-10')));
    assert.ok(selectDeployImages({ release: '5.0.6', vars }).images.every((i) => i.ref.endsWith(':5.0.6')));
  });

  it('says when a train tag may need a host-OS suffix', () => {
    assert.match(selectDeployImages({ release: 'train' }).warnings.join('\n'), /adds a tag suffix by host OS .* set openstack_tag_suffix or openstack_tag/);
  });

  it('warns about a globals value with Jinja it cannot evaluate, and uses the default', () => {
    const sel = selectDeployImages({ vars: parseKollaGlobals('openstack_release: "2025.1"\nenable_cinder: "{{ lookup(\'env\', \'CINDER\') }}"\nenable_heat: "{{ enable_openstack_core | bool }}"\n', 'globals.yml') });
    assert.deepEqual(sel.warnings, [`globals.yml: enable_cinder: "{{ lookup('env', 'CINDER') }}" cannot be evaluated without Ansible; using kolla-ansible's default`]);
    assert.deepEqual(names(sel.images), base);
  });

  it('asks the mirror for a local docker_registry\'s images by repository (the mirror is the registry), public ones as named', () => {
    const local = selectDeployImages({ vars: parseKollaGlobals('openstack_release: "2025.1"\ndocker_registry: mirror.lan:4000', 'g') });
    const mapped = pullListThroughMirror(local, '127.0.0.1:4000');
    assert.equal(mapped.note, 'docker_registry mirror.lan:4000 taken to be this mirror (127.0.0.1:4000)');
    assert.ok(mapped.refs.includes('127.0.0.1:4000/openstack.kolla/nova-api:2025.1-rocky-9'));
    assert.deepEqual(pullListThroughMirror(local, 'mirror.lan:4000'), { refs: local.images.map((i) => i.ref) });
    const quay = selectDeployImages({ release: '2025.1' });
    assert.deepEqual(pullListThroughMirror(quay, '127.0.0.1:4000'), { refs: quay.images.map((i) => i.ref) });
    const hub = selectDeployImages({ release: 'wallaby' });
    assert.ok(pullListThroughMirror(hub, '127.0.0.1:4000').refs.includes('kolla/centos-binary-nova-api:wallaby'));
  });

  it('needs a series: globals openstack_release or --kolla-release', () => {
    assert.throws(() => selectDeployImages({ vars: {} }), /which kolla-ansible series\? set openstack_release in globals\.yml or give --kolla-release/);
    assert.throws(() => selectDeployImages({ release: '2025.3' }), /^KollaError: no kolla-ansible deploy facts for release "2025\.3"; did you mean "2025\.1"/);
  });

  describe('an operator inventory', () => {
    const INVENTORY = `
# all-in-one style, with children
[control]
ctl[01:02] ansible_user=kolla

[network:children]
control

[compute]
cmp01
cmp02 ; a second compute

[monitoring]
[storage]
[deployment]
localhost ansible_connection=local

[all:vars]
ansible_become=true
`;
    // the service groups as kolla-ansible's multinode has them: [nova-compute:children] compute ...
    const serviceGroups = Object.entries(data['2025.1']!.inventory.groups)
      .filter(([g]) => !Object.hasOwn(data['2025.1']!.inventory.hosts_by_node_group, g))
      .map(([g, children]) => `[${g}:children]\n${children.join('\n')}\n`).join('\n');
    const inventory = parseInventory(`${INVENTORY}\n${serviceGroups}`, 'multinode');

    it('reads groups, children and host ranges', () => {
      assert.deepEqual([...inventory.hosts.get('control')!], ['ctl01', 'ctl02']);
      assert.deepEqual([...inventory.hosts.get('compute')!], ['cmp01', 'cmp02']);
      assert.deepEqual([...inventory.children.get('network')!], ['control']);
    });

    it('gives the default image set on its hosts, each with the groups that need it', () => {
      const sel = selectDeployImages({ release: '2025.1', inventory });
      assert.deepEqual(names(sel.images), base);
      assert.deepEqual(sel.images.find((i) => i.image === 'haproxy')?.groups, ['control']);
    });

    it('limits to one group\'s hosts with --kolla-group', () => {
      const sel = selectDeployImages({ release: '2025.1', inventory, group: 'compute' });
      assert.deepEqual(sel.images.map((i) => i.ref).sort(), [...data['2025.1']!.summary.images_compute].sort());
    });

    it('answers a group the inventory does not have with the one meant', () => {
      assert.throws(() => selectDeployImages({ release: '2025.1', inventory, group: 'compte' }), /^KollaError: the inventory multinode has no group "compte"; did you mean "compute"\?/);
    });
  });
});
