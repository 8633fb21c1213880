/**
 * A synthetic Kolla release for pre-warm tests and bench/prewarm.ts: ten images, two shared
 * bases, three service bases, five services (Kolla's shape in small), profile `synth`.
 */
import type { KollaData } from '../../lib/kolla/profile.ts';

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
