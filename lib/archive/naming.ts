/**
 * The local name an imported image gets. Pure: no I/O.
 *
 * In order of precedence:
 *   --as NAME[:TAG]  exactly that name (and tag, when given);
 *   --prefix P       P + the image's last path component, the namespace dropped:
 *                    kolla/centos-binary-nova-api -> lokolla/centos-binary-nova-api with --prefix lokolla/;
 *   rewrite rules    reversed: the first rule with a `local` whose `match` or `upstreamName`
 *                    matches the image's name serves it, so the image goes to that local name
 *                    (kolla/x with { match: "kolla/*", local: "lokolla/*" } -> lokolla/x);
 *   otherwise        the name as a ferry mirror would ask for it: docker.io/kolla/x -> kolla/x,
 *                    ubuntu -> library/ubuntu, quay.io/a/b -> quay.io/a/b; a host with a port
 *                    (the mirror the image was pulled from, 127.0.0.1:4000/a/b) is dropped -> a/b.
 * The tag is the source's, or "latest" when the source has none.
 * Rules are tried against the mirror name first, then the name without its registry host, then
 * (Docker Hub official images) without library/.
 */
import type { RewriteRule } from '../config/schema.ts';
import { RegistryError } from '../oci/errors.ts';
import { isValidName, isValidTag } from '../oci/names.ts';
import { DOCKER_HUB_HOST, parseImageRef } from '../rewrite/image-ref.ts';
import { matchPattern, substitute } from '../rewrite/pattern.ts';

export interface NamingOptions {
  as?: string;
  prefix?: string;
  rules?: readonly RewriteRule[];
}

export interface ImportTarget {
  name: string;
  tag: string;
}

/** Splits `name[:tag]` (a port-free name: a colon after the last slash starts the tag). */
export function splitNameTag(value: string): { name: string; tag?: string } {
  const colon = value.lastIndexOf(':');
  if (colon > value.lastIndexOf('/')) return { name: value.slice(0, colon), tag: value.slice(colon + 1) };
  return { name: value };
}

/** Candidate names of a source image, most specific first. */
export function sourceNames(source: string): { names: string[]; tag?: string } {
  const ref = parseImageRef(source);
  const names: string[] = [];
  const bare = ref.repository;
  if (ref.host === DOCKER_HUB_HOST) {
    names.push(bare);
    if (bare.startsWith('library/') && bare.split('/').length === 2) names.push(bare.slice('library/'.length));
  } else {
    const full = `${ref.host}/${bare}`;
    if (isValidName(full)) names.push(full);
    names.push(bare);
  }
  return ref.tag === undefined ? { names } : { names, tag: ref.tag };
}

function ruleTarget(rules: readonly RewriteRule[], names: readonly string[]): string | undefined {
  for (const name of names) {
    for (const rule of rules) {
      if (rule.local === undefined) continue;
      for (const pattern of [rule.match, rule.upstreamName]) {
        if (pattern === undefined) continue;
        const m = matchPattern(pattern, name);
        if (m) return substitute(rule.local, m.capture);
      }
    }
  }
  return undefined;
}

/**
 * The local name and tag for a source image reference (a RepoTag or an io.containerd.image.name),
 * or for no reference at all (an untagged image: only --as can name it).
 */
export function importTarget(source: string | undefined, opts: NamingOptions = {}): ImportTarget {
  const src = source === undefined ? undefined : sourceNames(source);
  const tagOf = (override?: string): string => {
    const tag = override ?? src?.tag ?? 'latest';
    if (!isValidTag(tag)) throw new RegistryError('TAG_INVALID', `invalid tag ${JSON.stringify(tag)}`, { tag });
    return tag;
  };
  if (opts.as !== undefined) {
    const { name, tag } = splitNameTag(opts.as);
    if (!isValidName(name)) throw new RegistryError('NAME_INVALID', `--as: invalid repository name ${JSON.stringify(name)}`, { name });
    return { name, tag: tagOf(tag) };
  }
  if (!src) throw new RegistryError('NAME_INVALID', 'the image has no name in the archive: give one with --as NAME[:TAG]');
  const primary = src.names[0] as string;
  if (opts.prefix !== undefined) {
    const last = primary.slice(primary.lastIndexOf('/') + 1);
    const name = `${opts.prefix}${last}`;
    if (!isValidName(name)) throw new RegistryError('NAME_INVALID', `--prefix gives an invalid repository name ${JSON.stringify(name)}`, { name });
    return { name, tag: tagOf() };
  }
  const ruled = ruleTarget(opts.rules ?? [], src.names);
  if (ruled !== undefined) return { name: ruled, tag: tagOf() };
  const ref = parseImageRef(source as string);
  const hostWithPort = ref.host.includes(':') || ref.host === 'localhost';
  return { name: hostWithPort ? ref.repository : primary, tag: tagOf() };
}
