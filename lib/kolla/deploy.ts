/**
 * What `kolla-ansible pull` (and deploy) pulls, from kolla-ansible's own tree (deploy.json: per
 * series, every container of every role with its image, inventory group, `enable_*` variables and
 * gates, the shipped multinode inventory, the defaults that name images, and what a default
 * deploy pulls). For an operator's settings (globals.yml) and inventory: which containers run on
 * which hosts, so which images are needed, named as kolla-ansible names them.
 */
import { readFileSync } from 'node:fs';
import { didYouMean } from '../did-you-mean.ts';
import { projectFile } from '../project-files.ts';
import { parseImageRef } from '../rewrite/image-ref.ts';
import { UNDEFINED, UNKNOWN, condition, render, templateValue, type Scope, type Value } from './ansible-expr.ts';
import { hostsOf, hostsOfNamedGroup, nodeGroupsOf, type Inventory } from './inventory.ts';
import { KollaError } from './kolla-error.ts';
import { distroVersionKnown } from './naming.ts';
import { parseKollaRelease } from './releases.ts';

export interface DeployContainer {
  service: string;
  container: string;
  image: string;
  image_prefix: string | null;
  /** Inventory group(s) the container runs on; null: every host the role runs on. */
  group: string | string[] | null;
  node_groups: string[];
  default_deploy: boolean;
  enable_vars: Record<string, Value>;
  gates: Value[];
}

export interface DeploySeries {
  ref: string;
  commit: string;
  reference_format: string;
  defaults: Record<string, Value | { unresolved_expression: string; why: string }>;
  defaults_notes: string[];
  enable_flags: Record<string, { default: Value; value: boolean | null }>;
  containers: DeployContainer[];
  inventory: { hosts_by_node_group: Record<string, string[]>; groups: Record<string, string[]> };
  summary: { images_default_count: number; image_names_default: string[]; images_default: string[]; images_compute_count: number; images_compute: string[] };
}

export type DeployData = Record<string, DeploySeries>;

let shipped: DeployData | undefined;

/** kolla-ansible's deploy facts that ship with ferry (lib/kolla/deploy.json), read once. */
export function loadKollaDeploy(): DeployData {
  shipped ??= JSON.parse(readFileSync(projectFile('lib/kolla/deploy.json'), 'utf8')) as DeployData;
  return shipped;
}

/** The deploy.json series of a release (`2025.1`, `stable/2025.1`, `epoxy`, `5.0.6` -> pike, `master`). */
export function deploySeriesOf(release: string, data: DeployData = loadKollaDeploy()): string {
  let series: string | undefined;
  try {
    series = parseKollaRelease(release).series;
  } catch {
    series = undefined;
  }
  if (series && Object.hasOwn(data, series)) return series;
  throw new KollaError(`no kolla-ansible deploy facts for release ${JSON.stringify(release)}${didYouMean(release, Object.keys(data))}`);
}

/** kolla-ansible's shipped `multinode` inventory of a series. */
export function shippedInventory(series: string, data: DeployData = loadKollaDeploy()): Inventory {
  const { groups, hosts_by_node_group: byNodeGroup } = data[series]!.inventory;
  const nodeGroups = new Map<string, string[]>();
  for (const [group, hosts] of Object.entries(byNodeGroup)) for (const h of hosts) nodeGroups.set(h, [...(nodeGroups.get(h) ?? []), group]);
  const inv: Inventory = { source: `kolla-ansible ${series} multinode`, hosts: new Map(), children: new Map(), nodeGroups };
  for (const [group, members] of Object.entries(groups)) {
    for (const m of members) {
      const map = Object.hasOwn(groups, m) ? inv.children : inv.hosts;
      let set = map.get(group);
      if (!set) map.set(group, (set = new Set()));
      set.add(m);
    }
  }
  return inv;
}

/**
 * Defaults of variables the gates compare that deploy.json does not carry (kolla-ansible's
 * group_vars, the same in every series that has them). Run-time state (delegate_host,
 * common_run, a bootstrap host) is left unknown: a first deploy runs those containers.
 */
const VARIABLE_DEFAULTS: Record<string, Value> = {
  neutron_plugin_agent: 'openvswitch',
  nova_console: 'novnc',
  keystone_token_provider: 'fernet',
  designate_backend: 'bind9',
  nova_compute_virt_type: 'kvm',
  orchestration_engine: 'ANSIBLE',
  om_rpc_transport: 'rabbit',
  om_notify_transport: 'rabbit',
  cloudkitty_storage_backend: 'influxdb',
  swift_has_replication_network: false,
  glance_enable_tls_backend: false,
  neutron_enable_tls_backend: false,
  neutron_ovn_dhcp_agent: false,
  neutron_enable_ovn_agent: false,
  keystone_identity_providers: [],
  keystone_identity_mappings: [],
  nova_cell_name: '',
  nova_cell_ironic_cell_name: '',
  octavia_provider_drivers: 'amphora:Amphora provider',
  mariadb_loadbalancer: 'proxysql',
};

/** keystone's token provider was uuid up to queens, fernet from rocky on. */
const UUID_TOKEN_SERIES = new Set(['mitaka', 'newton', 'ocata', 'pike', 'queens']);

function variableDefault(series: string, name: string): Value {
  if (name === 'keystone_token_provider' && UUID_TOKEN_SERIES.has(series)) return 'uuid';
  return Object.hasOwn(VARIABLE_DEFAULTS, name) ? VARIABLE_DEFAULTS[name]! : UNDEFINED;
}

export interface DeploySelection {
  series: string;
  /** docker_registry the references start with ('' for none: Docker Hub). */
  registry: string;
  /** Image references, each with the node groups (groups listing a host directly) that run it. */
  images: Array<{ ref: string; image: string; groups: string[] }>;
  /** What ferry could not know and assumed: one line each. */
  warnings: string[];
}

export interface DeploySelectOptions {
  /** A release or series; else globals' openstack_release decides. */
  release?: string;
  /** globals.yml's variables (YAML values; `{{ }}` strings are templated against the rest). */
  vars?: Record<string, Value>;
  /** The inventory; default kolla-ansible's shipped multinode. */
  inventory?: Inventory;
  /** Only images that run on hosts of this group. */
  group?: string;
  data?: DeployData;
}

function isUnresolved(v: unknown): v is { unresolved_expression: string } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'unresolved_expression' in v;
}

/** The images `kolla-ansible pull` pulls for these settings, named as kolla-ansible names them. */
export function selectDeployImages(opts: DeploySelectOptions): DeploySelection {
  const data = opts.data ?? loadKollaDeploy();
  const vars = { ...(opts.vars ?? {}) };
  const warnings: string[] = [];
  const releaseGiven = opts.release ?? (typeof vars.openstack_release === 'string' ? vars.openstack_release : undefined);
  if (releaseGiven === undefined) throw new KollaError('which kolla-ansible series? set openstack_release in globals.yml or give --kolla-release (e.g. 2025.1)');
  const series = deploySeriesOf(releaseGiven, data);
  const facts = data[series]!;
  // --kolla-release overrides globals' openstack_release: a version (5.0.6, what "auto" resolves
  // to) is the tag; a series replaces a series named in globals (its own default tag applies),
  // and keeps a version there (the tag of an ocata-stein install).
  const isVersion = (v: Value | undefined): boolean => typeof v === 'string' && /^\d+\.\d+\.\d+$/.test(v.trim());
  if (opts.release !== undefined) {
    if (isVersion(opts.release)) vars.openstack_release = opts.release.trim();
    else if (!isVersion(vars.openstack_release)) delete vars.openstack_release;
  }
  const inventory = opts.inventory ?? shippedInventory(series, data);

  // Variable lookup, per host: operator's vars, then enable_* defaults, then naming defaults, then known defaults.
  const defaults: Record<string, Value> = {};
  for (const [k, v] of Object.entries(facts.defaults)) if (v !== null && !isUnresolved(v)) defaults[k] = v as Value;
  const groupsValue: Record<string, Value> = {};
  for (const g of new Set([...inventory.hosts.keys(), ...inventory.children.keys(), 'all'])) groupsValue[g] = [...hostsOf(inventory, g)];
  // groups['x'] of a group the inventory lacks is empty, as kolla-ansible's inventories define them all.
  const groups = new Proxy(groupsValue, { get: (t, k: string) => (Object.hasOwn(t, k) ? t[k] : []) }) as Value;
  // Per host, what group_vars and globals.yml say, each name worked out once.
  const hostScopes = new Map<string | undefined, Scope>();
  const hostScope = (host: string | undefined): Scope => {
    let scope = hostScopes.get(host);
    if (scope) return scope;
    const known = new Map<string, Value>();
    const resolving = new Set<string>();
    const lookup = (name: string): Value => {
      if (Object.hasOwn(vars, name)) return templateValue(vars[name]!, scope!);
      const flag = facts.enable_flags[name];
      if (flag) {
        const v = templateValue(flag.default, scope!);
        return v === UNKNOWN || v === UNDEFINED ? (flag.value ?? UNKNOWN) : v;
      }
      if (Object.hasOwn(defaults, name)) return defaults[name]!;
      return variableDefault(series, name);
    };
    scope = (name) => {
      if (name === 'inventory_hostname') return host ?? UNKNOWN;
      if (name === 'groups') return groups;
      if (known.has(name)) return known.get(name)!;
      if (resolving.has(name)) return UNKNOWN;
      resolving.add(name);
      const v = lookup(name);
      resolving.delete(name);
      known.set(name, v);
      return v;
    };
    hostScopes.set(host, scope);
    return scope;
  };
  // A container's enable_vars carry the role defaults of variables group_vars does not define.
  const scopeFor = (host: string | undefined, roleDefaults: Record<string, Value> = {}): Scope => {
    const base = hostScope(host);
    const scope: Scope = (name) => {
      if (Object.hasOwn(roleDefaults, name) && !Object.hasOwn(vars, name) && !facts.enable_flags[name]) return templateValue(roleDefaults[name]!, base);
      return base(name);
    };
    return scope;
  };

  // globals.yml values ferry cannot evaluate: kolla-ansible's default instead, said once.
  const global = scopeFor(undefined);
  for (const [name, raw] of Object.entries(vars)) {
    if (typeof raw === 'string' && raw.includes('{{') && templateValue(raw, global) === UNKNOWN) {
      warnings.push(`globals.yml: ${name}: ${JSON.stringify(raw)} cannot be evaluated without Ansible; using kolla-ansible's default`);
      delete vars[name];
    }
  }

  const limit = opts.group === undefined ? undefined : hostsOfNamedGroup(inventory, opts.group);
  const images = new Map<string, { ref: string; image: string; groups: Set<string> }>();
  const { name: naming, registry } = imageNaming(series, facts, global, vars, warnings);
  // The common role up to victoria ran as every service role's dependency: on the hosts they run on.
  const asDependency = (c: DeployContainer): boolean => c.service === 'common' && (c.group === null || c.group === 'all');
  const serviceHosts = new Set<string>();
  for (const c of [...facts.containers.filter((x) => !asDependency(x)), ...facts.containers.filter(asDependency)]) {
    let hosts = new Set(containerGroups(c, global).flatMap((g) => [...hostsOf(inventory, g)]));
    if (asDependency(c)) hosts = new Set([...hosts].filter((h) => serviceHosts.has(h)));
    for (const host of hosts) {
      if (limit && !limit.has(host)) continue;
      const scope = scopeFor(host, c.enable_vars);
      // A condition ferry cannot decide (run-time state) counts as true, as on a first deploy.
      if (!gatesHold(c, scope)) continue;
      serviceHosts.add(host);
      const ref = naming(c.image);
      let entry = images.get(ref);
      if (!entry) images.set(ref, (entry = { ref, image: c.image, groups: new Set() }));
      for (const g of nodeGroupsOf(inventory, host)) entry.groups.add(g);
    }
  }
  const list = [...images.values()].sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0)).map((e) => ({ ref: e.ref, image: e.image, groups: [...e.groups].sort() }));
  return { series, registry, images: list, warnings };
}

/**
 * Whether a container's gates let it run on the host `scope` is for: all of them, except the
 * `common` role's up to victoria, which every service role pulled in as a dependency, each with
 * its own condition: it runs where any of them does.
 */
function gatesHold(c: DeployContainer, scope: Scope): boolean {
  const results = c.gates.map((g) => condition(g, scope));
  if (c.service === 'common' && c.gates.length > 1) return results.some((r) => r !== false);
  return results.every((r) => r !== false);
}

/**
 * The inventory groups a container runs on. Two are made at run time: `mariadb_shard_<n>` (by
 * group_by, from the mariadb group) and `{{ role_rabbitmq_groups }}` (the role's own group).
 */
function containerGroups(c: DeployContainer, scope: Scope): string[] {
  const groups = c.group === null ? ['all'] : typeof c.group === 'string' ? [c.group] : c.group;
  return groups.map((g) => {
    if (/^mariadb_shard_\d+$/.test(g)) return 'mariadb';
    if (!g.includes('{{')) return g;
    const v = templateValue(g, scope);
    return typeof v === 'string' ? v : c.service;
  });
}

/** The naming era's reference of one image, from the series' reference format and the settings. */
function imageNaming(series: string, facts: DeploySeries, scope: Scope, vars: Record<string, Value>, warnings: string[]): { name: (image: string) => string; registry: string } {
  const text = (name: string): string | undefined => {
    const v = scope(name);
    if (v === UNKNOWN || v === UNDEFINED || v === null) return undefined;
    const r = render(v);
    return r === UNKNOWN ? undefined : r;
  };
  const release = text('openstack_release');
  if (release === undefined || release === 'auto') {
    throw new KollaError(`kolla-ansible ${series} tags images with the installed kolla-ansible's version (openstack_release: auto): set openstack_release in globals.yml or give --kolla-release VERSION (e.g. ${series === 'pike' ? '5.0.6' : 'the version of `pip show kolla-ansible`'})`);
  }
  const distro = text('kolla_base_distro') ?? 'centos';
  // Kolla 2.0.0-2.0.1 (mitaka) named its images kollaglue/...; 2.0.2 on kolla/...
  const namespace = vars.docker_namespace === undefined && /^2\.0\.[01]$/.test(release) ? 'kollaglue' : text('docker_namespace') ?? '';
  let suffix = text('openstack_tag_suffix');
  if (suffix === undefined) {
    suffix = '';
    if (vars.openstack_tag === undefined && facts.reference_format.includes('{openstack_tag_suffix}') && isUnresolved(facts.defaults.openstack_tag_suffix)) {
      warnings.push(`kolla-ansible ${series} adds a tag suffix by host OS (-centos8 or -centos8s on CentOS 8 hosts): assumed none; set openstack_tag_suffix or openstack_tag in globals.yml if yours has one`);
    }
  }
  let distroVersion = text('kolla_base_distro_version');
  if (vars.kolla_base_distro_version === undefined && vars.kolla_base_distro !== undefined && distro !== facts.defaults.kolla_base_distro) {
    distroVersion = distroVersionKnown(series, distro);
  }
  const values: Record<string, string | undefined> = {
    docker_namespace: namespace,
    docker_image_name_prefix: text('docker_image_name_prefix') ?? '',
    kolla_base_distro: distro,
    kolla_install_type: text('kolla_install_type') ?? 'binary',
    openstack_release: release,
    openstack_tag_suffix: suffix,
    kolla_base_distro_version: distroVersion,
  };
  const [repoFormat, tagFormat] = facts.reference_format.split(':') as [string, string];
  const fill = (format: string, image: string): string => format.replace(/\{(\w+)\}/g, (_, key: string) => {
    if (key === 'image') return image;
    const v = values[key];
    if (v === undefined) throw new KollaError(`kolla-ansible ${series} on ${distro}: set kolla_base_distro_version in globals.yml (e.g. 9, noble, bookworm) to name the images`);
    return v;
  });
  const registry = text('docker_registry') ?? '';
  const tag = text('openstack_tag') !== undefined && vars.openstack_tag !== undefined ? text('openstack_tag')! : undefined;
  const name = (image: string): string => {
    const repo = fill(repoFormat.replace(/^\{docker_registry\}\//, ''), image);
    const ref = `${registry === '' ? '' : `${registry}/`}${repo}:${tag ?? fill(tagFormat, image)}`;
    try {
      parseImageRef(ref);
    } catch (e) {
      throw new KollaError(`globals.yml names ${image} as ${JSON.stringify(ref)}, not a valid image reference: ${(e as Error).message}`);
    }
    return ref;
  };
  return { name, registry };
}
