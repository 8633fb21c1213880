/**
 * The local name an imported image gets. Pure: no I/O.
 *
 * In order of precedence:
 *   --as NAME[:TAG]  exactly that name (and tag, when given);
 *   --prefix P       P + the image's last path component, the namespace dropped:
 *                    kolla/centos-binary-nova-api -> lokolla/centos-binary-nova-api with --prefix lokolla/;
 *   routing          the local repository a pull of the image looks in first, as route() says
 *                    (the one reading of the rules): candidates are the names a client may pull
 *                    the image by (its own names, and the names a rule whose upstreamName is the
 *                    image's name fetches it by); a candidate decided by a rewrite rule wins over
 *                    one that is not, the first of each kind first (kolla/x with
 *                    { match: "kolla/*", local: "lokolla/*" } -> lokolla/x; with a
 *                    { match: "kolla/special" } rule before it, kolla/special stays kolla/special,
 *                    as its pull looks there). Without rules this is the name as a ferry mirror
 *                    would ask for it: docker.io/kolla/x -> kolla/x, ubuntu -> library/ubuntu,
 *                    quay.io/a/b -> quay.io/a/b; a host with a port (the mirror the image was
 *                    pulled from, 127.0.0.1:4000/a/b) or localhost is dropped -> a/b.
 * The tag is the source's, or "latest" when the source has none.
 */
import { RegistryError } from '../oci/errors.ts';
import { isValidName, isValidTag } from '../oci/names.ts';
import { DOCKER_HUB_HOST, parseImageRef } from '../rewrite/image-ref.ts';
import { matchPattern } from '../rewrite/pattern.ts';
import { route, type Route, type RoutingConfig } from '../rewrite/route.ts';

export interface NamingOptions {
  as?: string;
  prefix?: string;
  /** The upstreams and rewrite rules a pull is routed by. */
  routing?: RoutingConfig;
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

/**
 * Names of a source image, most specific first: `names` as a mirror is asked for them, `upstream`
 * as an upstream may name it (with its registry host), to read rules' upstreamName against.
 */
function sourceNames(source: string): { names: string[]; upstream: string[]; tag?: string } {
  const ref = parseImageRef(source);
  const names: string[] = [];
  const bare = ref.repository;
  const full = `${ref.host}/${bare}`;
  if (ref.host === DOCKER_HUB_HOST) {
    names.push(bare);
    if (bare.startsWith('library/') && bare.split('/').length === 2) names.push(bare.slice('library/'.length));
  } else if (!ref.host.includes(':') && ref.host !== 'localhost') {
    // A host with a port (or localhost) is the registry it was pulled from, never part of a name.
    if (isValidName(full)) names.push(full);
    names.push(bare);
  } else {
    names.push(bare);
  }
  const upstream = [...new Set([...(isValidName(full) ? [full] : []), ...names])];
  return ref.tag === undefined ? { names, upstream } : { names, upstream, tag: ref.tag };
}

interface Candidate {
  name: string;
  /** The rule whose upstreamName gave this name: only that rule deciding its route makes it a name of the image. */
  rule?: number;
}

/** The names a client may pull the image by: its own, then those rules fetch it under. */
function pullCandidates(routing: RoutingConfig, src: { names: string[]; upstream: string[] }): Candidate[] {
  const out: Candidate[] = src.names.map((name) => ({ name }));
  routing.rewrite.forEach((rule, i) => {
    const pattern = rule.upstreamName;
    if (pattern === undefined) return;
    for (const upstreamName of src.upstream) {
      const m = matchPattern(pattern, upstreamName);
      if (!m) continue;
      // Many names onto one upstream repository (a * in match only) cannot be read back.
      const name = rule.match.includes('*') ? (m.capture === undefined ? undefined : rule.match.replace('*', m.capture)) : rule.match;
      if (name !== undefined && isValidName(name)) out.push({ name, rule: i });
    }
  });
  return out;
}

/** What route says for the best candidate: a rule's decision first, else the first plain name. */
function routedTarget(routing: RoutingConfig, candidates: readonly Candidate[]): string | undefined {
  let plain: string | undefined;
  for (const c of candidates) {
    let r: Route;
    try {
      r = route(routing, c.name);
    } catch {
      continue;
    }
    if (r.local === undefined || (c.rule !== undefined && r.rule !== c.rule)) continue;
    if (r.rule !== undefined) return r.local;
    plain ??= r.local;
  }
  return plain;
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
  const routing = opts.routing ?? { upstreams: {}, rewrite: [] };
  return { name: routedTarget(routing, pullCandidates(routing, src)) ?? primary, tag: tagOf() };
}
