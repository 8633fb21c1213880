/**
 * The image references a Kolla deploy pulls, per naming era (kolla-ansible's role defaults):
 *   Liberty, Mitaka 2.0.0-2.0.1  {registry/}kollaglue/{distro}-{install_type}-{image}:{release}
 *   Mitaka 2.0.2 - Wallaby       {registry/}kolla/{distro}-{install_type}-{image}:{tag}
 *   Xena - Yoga                  quay.io/openstack.kolla/{distro}-{install_type}-{image}:{tag}
 *   Zed and later                quay.io/openstack.kolla/{image}:{release}-{distro}-{distro_version}
 * Registry and namespace are kolla-ansible's docker_registry and docker_namespace.
 */
import { parseImageRef } from '../rewrite/image-ref.ts';
import { KollaError } from './kolla-error.ts';
import { expandProfile, type KollaData } from './profile.ts';
import { parseKollaRelease, type KollaEra, type KollaRelease } from './releases.ts';

export type KollaInstallType = 'binary' | 'source';

export interface KollaNamingOptions {
  /** Series, branch or version: `2.0.1`, `mitaka`, `wallaby`, `stable/2025.1`, `2025.1`. */
  release: string;
  /** centos, ubuntu, debian, rocky, ... */
  distro: string;
  /** Ignored from Zed on (no install type in names); default binary up to Xena, source for Yoga. */
  installType?: KollaInstallType;
  /** Zed on: 9, jammy, noble, bookworm; defaults where the release's default is known. */
  distroVersion?: string;
  /** Overrides the era's tag (kolla-ansible's openstack_tag). */
  tag?: string;
  /** docker_registry, e.g. `HOST:4000`; '' for none (Docker Hub). Default: none before Xena, quay.io after. */
  registry?: string;
  /** docker_namespace; default kollaglue, kolla or openstack.kolla by era. */
  namespace?: string;
}

const NAMESPACE: Record<KollaEra, string> = { kollaglue: 'kollaglue', kolla: 'kolla', 'quay-prefixed': 'openstack.kolla', quay: 'openstack.kolla' };
const REGISTRY: Record<KollaEra, string> = { kollaglue: '', kolla: '', 'quay-prefixed': 'quay.io', quay: 'quay.io' };

// The base distribution versions Kolla built for each series, where we are sure of them;
// others must be given (distroVersion).
// rocky is kolla-ansible's default distro of each series (deploy.json's defaults).
const DISTRO_VERSIONS: Record<string, Record<string, string>> = {
  zed: { rocky: '9', ubuntu: 'jammy', debian: 'bullseye' },
  '2023.1': { rocky: '9', ubuntu: 'jammy' },
  '2023.2': { rocky: '9', ubuntu: 'jammy', debian: 'bookworm' },
  '2024.1': { rocky: '9', ubuntu: 'jammy', debian: 'bookworm' },
  '2024.2': { rocky: '9', ubuntu: 'noble', debian: 'bookworm' },
  '2025.1': { rocky: '9', ubuntu: 'noble', debian: 'bookworm' },
  '2025.2': { rocky: '10' },
  '2026.1': { rocky: '10' },
  master: { rocky: '10' },
};

/** The base distro version Kolla built `series` on for `distro`, where ferry knows it. */
export function distroVersionKnown(series: string, distro: string): string | undefined {
  return DISTRO_VERSIONS[series]?.[distro];
}

function distroVersionFor(rel: KollaRelease, distro: string): string {
  const known = DISTRO_VERSIONS[rel.series]?.[distro];
  if (known === undefined) {
    throw new KollaError(`Kolla ${rel.series} on ${distro}: give the distro version (e.g. 9, jammy, bookworm) for the image tag`);
  }
  return known;
}

function nameAndTag(image: string, rel: KollaRelease, opts: KollaNamingOptions): string {
  if (rel.era === 'quay') {
    const tag = opts.tag ?? `${rel.series}-${opts.distro}-${opts.distroVersion ?? distroVersionFor(rel, opts.distro)}`;
    return `${image}:${tag}`;
  }
  const installType = opts.installType ?? (rel.series === 'yoga' ? 'source' : 'binary');
  return `${opts.distro}-${installType}-${image}:${opts.tag ?? rel.version ?? rel.series}`;
}

/** The reference of one Kolla image, checked by the same parser import and prewarm use. */
export function kollaImageRef(image: string, opts: KollaNamingOptions): string {
  const rel = parseKollaRelease(opts.release);
  const registry = opts.registry ?? REGISTRY[rel.era];
  const namespace = opts.namespace ?? NAMESPACE[rel.era];
  const ref = [registry, namespace, nameAndTag(image, rel, opts)].filter((part) => part !== '').join('/');
  parseImageRef(ref);
  return ref;
}

export interface KollaImageRefsOptions extends KollaNamingOptions {
  /** One profile or several (a union), e.g. `default`. */
  profile: string | readonly string[];
  /** Release whose image list to use instead of `release`'s own (lists ship for mitaka..2026.1 and master). */
  imageList?: string;
  data?: KollaData;
}

/** The references of a Kolla profile's images, parents first (for `ferry prewarm --kolla-profile`). */
export function kollaImageRefs(opts: KollaImageRefsOptions): string[] {
  const images = expandProfile(opts.imageList ?? opts.release, opts.profile, opts.data);
  return images.map((image) => kollaImageRef(image, opts));
}
