/**
 * The list `ferry prewarm --kolla-globals` works from: the images `kolla-ansible pull` pulls for
 * an operator's globals.yml and inventory (or kolla-ansible's shipped multinode), optionally for
 * one group's hosts, with a header line that says what it was computed from and how many.
 */
import { selectDeployImages, type DeploySelection } from './deploy.ts';
import { readKollaGlobals } from './globals.ts';
import { readInventory } from './inventory.ts';

export interface KollaPullListOptions {
  globalsFile: string;
  inventoryFile?: string;
  group?: string;
  /** Series or version, when globals.yml has no openstack_release (or to override it). */
  release?: string;
}

export interface KollaPullList extends DeploySelection {
  /** `kolla-ansible 2025.1 deploy (...): 32 images`. */
  summary: string;
}

export async function kollaPullList(opts: KollaPullListOptions): Promise<KollaPullList> {
  const vars = await readKollaGlobals(opts.globalsFile);
  const inventory = opts.inventoryFile === undefined ? undefined : await readInventory(opts.inventoryFile);
  const selection = selectDeployImages({ release: opts.release, vars, inventory, group: opts.group });
  const from = [
    `globals ${opts.globalsFile}`,
    `inventory ${opts.inventoryFile ?? `kolla-ansible ${selection.series} multinode`}`,
    opts.group === undefined ? 'all groups' : `group ${opts.group}`,
  ].join(', ');
  return { ...selection, summary: `kolla-ansible ${selection.series} deploy (${from}): ${selection.images.length} images` };
}

/** Dry-run lines: an image list file (`ferry prewarm -f` reads it back), each image's groups as a comment. */
export function formatPullList(list: KollaPullList): string {
  const width = Math.max(...list.images.map((i) => i.ref.length), 0);
  return [`# ${list.summary}`, ...list.images.map((i) => `${i.ref.padEnd(width)}  # ${i.groups.join(', ')}`)].join('\n');
}

/** Registries kolla-ansible pulls from by default; any other docker_registry is a local registry. */
const PUBLIC_REGISTRIES = new Set(['', 'quay.io', 'docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * The references to ask the mirror at `mirrorHost` for. A local docker_registry is the mirror
 * itself, as Kolla's docs set it up (`docker_registry: mirror.lan:4000`), though the mirror may be
 * reached at another address here (127.0.0.1:4000 on its own host): those references are asked of
 * the mirror by repository. Public registries' references go through the mirror's routing as they are.
 */
export function pullListThroughMirror(list: DeploySelection, mirrorHost: string): { refs: string[]; note?: string } {
  const refs = list.images.map((i) => i.ref);
  if (PUBLIC_REGISTRIES.has(list.registry) || list.registry === mirrorHost) return { refs };
  return {
    refs: refs.map((ref) => `${mirrorHost}/${ref.slice(list.registry.length + 1)}`),
    note: `docker_registry ${list.registry} taken to be this mirror (${mirrorHost})`,
  };
}
