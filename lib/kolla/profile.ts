/**
 * Kolla build profiles, from the images and profiles Kolla itself ships (images.json, read from
 * kolla/common/config.py and the docker/ Dockerfile.j2 templates). A profile is a list of regular
 * expressions searched in each image name (Python re.search); an image's parents up to the root
 * are built too, so they belong to the profile.
 */
import { readFileSync } from 'node:fs';
import { didYouMean } from '../did-you-mean.ts';
import { projectFile } from '../project-files.ts';
import { KollaError } from './kolla-error.ts';
import { parseKollaRelease } from './releases.ts';

export interface KollaReleaseData {
  profiles: Record<string, string[]>;
  /** image -> parent image, null for a root. */
  images: Record<string, string | null>;
}

/** Release key (as in images.json: `<series> (<ref>)`, e.g. `mitaka (mitaka-eol)`, `2025.1 (stable/2025.1)`) -> data. */
export type KollaData = Record<string, KollaReleaseData>;

let shipped: KollaData | undefined;

/** The image lists that ship with ferry (lib/kolla/images.json: every series mitaka..2026.1 and master), read once. */
export function loadKollaData(): KollaData {
  shipped ??= JSON.parse(readFileSync(projectFile('lib/kolla/images.json'), 'utf8')) as KollaData;
  return shipped;
}

/** The series or version before a key's parenthesis: `mitaka (mitaka-eol)` -> mitaka, `2.0.2 (mitaka)` -> 2.0.2. */
function keyRelease(key: string): string {
  return key.replace(/\s*\(.*\)$/, '');
}

/** The data key of `release`: itself, or the key of the same series (`2.0.2`, `mitaka`, `2025.1`, `epoxy`, `stable/2025.1`). */
export function resolveKollaRelease(release: string, data: KollaData = loadKollaData()): string {
  if (Object.hasOwn(data, release)) return release;
  const known = Object.keys(data);
  let series: string | undefined;
  try {
    series = parseKollaRelease(release).series;
  } catch {
    series = undefined;
  }
  const key = series && known.find((k) => parseKollaRelease(keyRelease(k)).series === series);
  if (!key) throw new KollaError(`no Kolla image list for release ${JSON.stringify(release)}${didYouMean(release, known.map(keyRelease))}`);
  return key;
}

/** Images in parent-before-child order (depth, then name), so a pre-warm fetches shared base layers first. */
function parentsFirst(names: Iterable<string>, images: Readonly<Record<string, string | null>>): string[] {
  const depth = (name: string): number => {
    let d = 0;
    for (let p = images[name]; p; p = images[p]) d++;
    return d;
  };
  return [...names].map((n) => ({ n, d: depth(n) })).sort((a, b) => a.d - b.d || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0)).map((x) => x.n);
}

/**
 * The images of one or more profiles of a release (a union), with every parent, parents first.
 * Regexes are kept as Kolla has them, odd ones too (mitaka's `aux` holds `trove,zaqar`, a
 * missing comma in Kolla's source, which matches no image).
 */
export function expandProfile(release: string, profile: string | readonly string[], data: KollaData = loadKollaData()): string[] {
  const key = resolveKollaRelease(release, data);
  const { profiles, images } = data[key] as KollaReleaseData;
  const patterns: RegExp[] = [];
  for (const name of typeof profile === 'string' ? [profile] : profile) {
    const regexes = Object.hasOwn(profiles, name) ? profiles[name] : undefined;
    if (!regexes) throw new KollaError(`Kolla ${keyRelease(key)} has no build profile ${JSON.stringify(name)}${didYouMean(name, Object.keys(profiles))}`);
    // No g flag: RegExp.test with g keeps lastIndex between calls.
    patterns.push(...regexes.map((r) => new RegExp(r)));
  }
  const chosen = new Set<string>();
  for (const image of Object.keys(images)) {
    if (!patterns.some((re) => re.test(image))) continue;
    for (let p: string | null | undefined = image; p && !chosen.has(p); p = images[p]) chosen.add(p);
  }
  return parentsFirst(chosen, images);
}

/** Profile names of a release. */
export function kollaProfiles(release: string, data: KollaData = loadKollaData()): string[] {
  return Object.keys((data[resolveKollaRelease(release, data)] as KollaReleaseData).profiles);
}
