/**
 * Ansible inventories in INI form, as kolla-ansible ships them (`multinode`, `all-in-one`):
 * `[group]` sections of hosts (`host var=value ...`, `name[01:03]` ranges), `[group:children]`
 * sections of groups, `[group:vars]` ignored. A group's hosts are its own and its children's.
 */
import { readFile } from 'node:fs/promises';
import { didYouMean } from '../did-you-mean.ts';
import { KollaError } from './kolla-error.ts';

export interface Inventory {
  /** Where it came from, for messages: a path, or `kolla-ansible <series> multinode`. */
  source: string;
  /** group -> hosts listed in it directly. */
  hosts: Map<string, Set<string>>;
  /** group -> child groups. */
  children: Map<string, Set<string>>;
  /** host -> the node groups to name it by, where the inventory says (kolla-ansible's multinode: control, compute ...). */
  nodeGroups?: Map<string, string[]>;
}

function groupOf(map: Map<string, Set<string>>, name: string): Set<string> {
  let set = map.get(name);
  if (!set) map.set(name, (set = new Set()));
  return set;
}

/** `compute[01:03]` -> compute01, compute02, compute03 (zero-padding kept); other names as they are. */
function expandHostRange(name: string): string[] {
  const m = /^(.*)\[(\d+):(\d+)\](.*)$/.exec(name);
  if (!m) return [name];
  const [, head, from, to, tail] = m as unknown as [string, string, string, string, string];
  const width = from.startsWith('0') ? from.length : 0;
  const out: string[] = [];
  for (let i = Number(from); i <= Number(to); i++) out.push(...expandHostRange(`${head}${String(i).padStart(width, '0')}${tail}`));
  return out;
}

export function parseInventory(text: string, source: string): Inventory {
  const inv: Inventory = { source, hosts: new Map(), children: new Map() };
  let section: { group: string; kind: 'hosts' | 'children' | 'vars' } = { group: 'ungrouped', kind: 'hosts' };
  text.split(/\r?\n/).forEach((raw, n) => {
    const line = raw.replace(/^\s*[#;].*$/, '').trim();
    if (line === '') return;
    const header = /^\[([^\]:]+)(?::(\w+))?\]$/.exec(line);
    if (header) {
      const kind = header[2] ?? 'hosts';
      if (kind !== 'hosts' && kind !== 'children' && kind !== 'vars') throw new KollaError(`${source}:${n + 1}: unknown section kind ":${kind}" (expected :children or :vars)`);
      section = { group: header[1]!.trim(), kind };
      if (kind !== 'vars') groupOf(kind === 'children' ? inv.children : inv.hosts, section.group);
      return;
    }
    if (section.kind === 'vars') return;
    const name = line.split(/\s+/)[0]!;
    if (section.kind === 'children') groupOf(inv.children, section.group).add(name);
    else for (const host of expandHostRange(name)) groupOf(inv.hosts, section.group).add(host);
  });
  return inv;
}

export async function readInventory(file: string): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new KollaError(`cannot read the Kolla inventory ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseInventory(text, file);
}

/** Every group the inventory names (with `all`). */
export function groupNames(inv: Inventory): string[] {
  return [...new Set(['all', ...inv.hosts.keys(), ...inv.children.keys()])].sort();
}

/** The hosts of a group: its own and its children's, recursively (`all`: every host). Unknown: empty. */
export function hostsOf(inv: Inventory, group: string, seen = new Set<string>()): Set<string> {
  if (group === 'all') return new Set([...inv.hosts.values()].flatMap((s) => [...s]));
  const out = new Set(inv.hosts.get(group) ?? []);
  if (seen.has(group)) return out;
  seen.add(group);
  for (const child of inv.children.get(group) ?? []) for (const h of hostsOf(inv, child, seen)) out.add(h);
  return out;
}

/** The hosts of a group the operator named, refusing a name the inventory does not have. */
export function hostsOfNamedGroup(inv: Inventory, group: string): Set<string> {
  const known = groupNames(inv);
  if (!known.includes(group)) throw new KollaError(`the inventory ${inv.source} has no group ${JSON.stringify(group)}${didYouMean(group, known)}`);
  return hostsOf(inv, group);
}

/** A host's node groups (control, network, compute ...): as the inventory names them, else the groups listing it directly. */
export function nodeGroupsOf(inv: Inventory, host: string): string[] {
  return inv.nodeGroups?.get(host) ?? [...inv.hosts.entries()].filter(([, hosts]) => hosts.has(host)).map(([g]) => g);
}
