/**
 * A synthetic Kolla release for pre-warm tests and bench/prewarm.ts: ten images, two shared
 * bases, three service bases, five services (Kolla's shape in small), profile `synth`. And a real
 * Kolla build profile with made-up images, for `ferry prewarm --kolla-profile` as an operator
 * runs it (the CLI knows only the releases ferry ships): MESOS_PROFILE, pushMesosProfile.
 */
import { kollaImageRefs } from '../../lib/kolla/naming.ts';
import { loadKollaData, resolveKollaRelease, type KollaData } from '../../lib/kolla/profile.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { pushImage } from '../helpers/skopeo.ts';

export const SYNTHETIC_KOLLA_RELEASE = '2.0.2';

const IMAGES: Record<string, string | null> = {
  base: null,
  'openstack-base': 'base',
  'nova-base': 'openstack-base',
  'nova-api': 'nova-base',
  'nova-compute': 'nova-base',
  'nova-conductor': 'nova-base',
  'glance-base': 'openstack-base',
  'glance-api': 'glance-base',
  'keystone-base': 'openstack-base',
  keystone: 'keystone-base',
};

export const SYNTHETIC_KOLLA: KollaData = {
  '2.0.2 (mitaka)': { profiles: { synth: ['nova', 'glance', 'keystone'] }, images: IMAGES },
};

/**
 * The image and its parents, root first (in the synthetic release, or in `images`, a release's
 * parent map): one layer each, so images share their parents' layers.
 */
export function kollaAncestry(image: string, images: Readonly<Record<string, string | null>> = IMAGES): string[] {
  const chain: string[] = [];
  for (let x: string | null | undefined = image; x; x = images[x]) chain.unshift(x);
  return chain;
}

/** `ferry prewarm`'s options for Kolla mitaka's `mesos` build profile: 9 images, 4 levels deep. */
export const MESOS_PROFILE = ['--kolla-profile', 'mesos', '--kolla-release', 'mitaka', '--kolla-distro', 'centos'];

/**
 * Every image of MESOS_PROFILE pushed to `host` as the CLI names them (kolla/centos-binary-X:2.0.2),
 * made up on Kolla's real parent tree: one layer per ancestor of `layerBytes(ancestor)`, so images
 * share their bases' layers. Returns each reference's image.
 */
export async function pushMesosProfile(host: string, layerBytes: (ancestor: string) => number, seed = 'kolla-mesos'): Promise<Map<string, BuiltImage>> {
  const parents = loadKollaData()[resolveKollaRelease('mitaka')]!.images;
  const refs = kollaImageRefs({ release: 'mitaka', profile: 'mesos', distro: 'centos' });
  const images = new Map<string, BuiltImage>();
  await Promise.all(refs.map(async (ref) => {
    const name = /centos-binary-(.+):/.exec(ref)![1]!;
    const chain = kollaAncestry(name, parents);
    const built = await buildImage({ seed: `${seed}/${name}`, layers: chain.map(layerBytes), layerSeeds: chain.map((x) => `${seed}-layer/${x}`), runnable: false });
    images.set(ref, built);
    await pushImage(built, host, ref.replace(/:.*$/, ''), ref.replace(/^.*:/, ''));
  }));
  return new Map(refs.map((r) => [r, images.get(r)!]));
}
