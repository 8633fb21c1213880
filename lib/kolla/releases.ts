import { didYouMean } from '../did-you-mean.ts';
import { KollaError } from './kolla-error.ts';

/**
 * Kolla releases: a series name, a Kolla version or a branch, resolved to the OpenStack series
 * and the naming era of its images (kolla-ansible's role defaults, see kolla/README.md).
 */

/** kollaglue/{distro}-{type}-{image} · kolla/{distro}-{type}-{image} · quay.io/openstack.kolla/ same, · quay.io/openstack.kolla/{image}:{release}-{distro}-{version} */
export type KollaEra = 'kollaglue' | 'kolla' | 'quay-prefixed' | 'quay';

export interface KollaRelease {
  /** OpenStack series as Kolla names its branch: mitaka ... zed, 2023.1, 2025.1. */
  series: string;
  /** The Kolla version when one was given, e.g. 2.0.2. */
  version?: string;
  era: KollaEra;
}

// Index + 1 is the Kolla major version of the series (Liberty was Kolla 1.x, 2025.1 is 20.x).
const SERIES = [
  'liberty', 'mitaka', 'newton', 'ocata', 'pike', 'queens', 'rocky', 'stein', 'train', 'ussuri', 'victoria',
  'wallaby', 'xena', 'yoga', 'zed', '2023.1', '2023.2', '2024.1', '2024.2', '2025.1', '2025.2', '2026.1',
];
const CODENAMES: Record<string, string> = {
  antelope: '2023.1', bobcat: '2023.2', caracal: '2024.1', dalmatian: '2024.2', epoxy: '2025.1', flamingo: '2025.2', gazpacho: '2026.1',
};
const VERSION = /^(\d+)\.(\d+)\.(\d+)$/;
const DATED_SERIES = /^(\d{4})\.([12])$/;

function eraOf(series: string, version: string | undefined): KollaEra {
  const n = SERIES.indexOf(series);
  if (series === 'liberty' || version === '2.0.0' || version === '2.0.1') return 'kollaglue';
  if (n >= 0 && n <= SERIES.indexOf('wallaby')) return 'kolla';
  if (series === 'xena' || series === 'yoga') return 'quay-prefixed';
  return 'quay';
}

/**
 * Accepts `mitaka`, `2.0.2`, `stable/2025.1`, `2025.1`, `epoxy`, `20.1.0`, `master`. Mitaka by
 * name means 2.0.2, the last Mitaka release of Kolla's images. Throws a KollaError on anything else.
 */
export function parseKollaRelease(release: string): KollaRelease {
  const name = release.trim().toLowerCase().replace(/^stable\//, '');
  const v = VERSION.exec(name);
  if (v) {
    const series = SERIES[Number(v[1]) - 1];
    if (series === undefined) throw new KollaError(`unknown Kolla version ${JSON.stringify(release)}: no series for major ${v[1]}`);
    return { series, version: name, era: eraOf(series, name) };
  }
  if (name === 'mitaka') return { series: 'mitaka', version: '2.0.2', era: 'kolla' };
  const series = CODENAMES[name] ?? name;
  if (SERIES.includes(series) || DATED_SERIES.test(series) || series === 'master') {
    return { series, era: eraOf(series, undefined) };
  }
  throw new KollaError(`unknown Kolla release ${JSON.stringify(release)}: expected a series (wallaby, 2025.1, master), a branch (stable/2025.1) or a version (2.0.2)${didYouMean(name, [...SERIES.slice(1), 'master', ...Object.keys(CODENAMES)])}`);
}
