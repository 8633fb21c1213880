/**
 * Where a requested repository is served from: a local repository to look in first and an
 * upstream to fetch from, after rewrite rules and tag maps. Pure: no I/O, no clock.
 *
 * Order of decision, for the effective name (the requested name, or `<ns>/<name>` when
 * containerd's `?ns=` names a registry other than the default upstream's):
 *   1. the first rewrite rule whose `match` matches the effective name;
 *   2. an ns no upstream serves is NAME_UNKNOWN; an ns one serves routes there, local under
 *      the effective name;
 *   3. a host-prefixed name (`quay.io/x`) goes to the upstream serving that host, local under
 *      the full name; a host-like first component no upstream serves (`openstack.kolla/x`)
 *      is served from local only, flagged `unknownHost` (never an open proxy, and images
 *      pushed under such a name, as kolla-build does, still pull);
 *   4. anything else is local under its own name, then `defaultUpstream` (registry-mirrors mode).
 * Manifests are served byte for byte whatever the route, so digests never change.
 */
import type { RewriteRule, UpstreamConfig } from '../config/schema.ts';
import { RegistryError } from '../oci/errors.ts';
import { isValidName, parseReference, requireName } from '../oci/names.ts';
import { hostsOf, splitHost, upstreamForHost } from './hosts.ts';
import { mapTag, matchPattern, substitute } from './pattern.ts';

export type RoutingUpstream = Pick<UpstreamConfig, 'url' | 'kind' | 'hosts'>;

/** The parts of the config routing reads; a loaded Config fits. */
export interface RoutingConfig {
  upstreams: Readonly<Record<string, RoutingUpstream>>;
  rewrite: readonly RewriteRule[];
  defaultUpstream?: string | undefined;
}

export interface Route {
  /** The name as asked. */
  requested: string;
  /** Local repository to look in first (may equal requested). */
  local?: string;
  /** Where to fetch from when local has nothing: a key of config.upstreams and the name there. */
  upstream?: { name: string; repository: string };
  /** Tag to serve or fetch, after the tag map; undefined for digest references and no reference. */
  tag?: string;
  /** The digest asked for, when the reference is a digest. */
  digest?: string;
  /** Index in config.rewrite of the rule that decided, for logs. */
  rule?: number;
  /** The deciding rule's tag map (requested -> served), to list tags back under requested names. */
  tagMap?: Readonly<Record<string, string>>;
  /** The first component looked like a registry host that no upstream serves: local only. */
  unknownHost?: string;
}

interface Target {
  /** The name rules match and local defaults to. */
  effective: string;
  /** The upstream containerd's ns named, when it decides. */
  nsUpstream?: string;
  /** ns named a host no upstream serves. */
  nsUnknown?: boolean;
}

interface Fallback {
  local?: string;
  upstream?: { name: string; repository: string };
  unknownHost?: string;
}

function upstreamOf(config: RoutingConfig, key: string, where: string): RoutingUpstream {
  const up = config.upstreams[key];
  if (!up) throw new RegistryError('UNKNOWN', `${where}: "${key}" is not a key of upstreams`);
  return up;
}

/** Docker Hub keeps official images under library/: `ubuntu` there is `library/ubuntu`. */
export function upstreamRepository(upstream: Pick<UpstreamConfig, 'kind'>, repository: string): string {
  return upstream.kind === 'dockerhub' && !repository.includes('/') ? `library/${repository}` : repository;
}

function toUpstream(config: RoutingConfig, key: string, repository: string, where: string): { name: string; repository: string } {
  return { name: key, repository: upstreamRepository(upstreamOf(config, key, where), repository) };
}

const localName = (name: string): string | undefined => (isValidName(name) ? name : undefined);

/** Registry hosts of Docker Hub: a bare name means one of these (Docker's rule). */
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * What a bare name means on an upstream: its own registry, except through a ferry relay, where a
 * bare name goes to the relay's default upstream, Docker Hub by Docker's rule.
 */
function bareNameServes(upstream: RoutingUpstream, host: string): boolean {
  return upstream.kind !== 'relay' || DOCKER_HUB_HOSTS.has(host);
}

/**
 * The name as if containerd had put its ns host in front. A name already prefixed by a
 * configured host, or by the ns host itself (a hosts.toml with override_path puts it in the
 * path), is not prefixed again; ns naming the default upstream leaves the name bare, since a bare
 * name already means the default upstream (so ns=docker.io shares the registry-mirrors cache).
 */
function target(config: RoutingConfig, name: string, ns: string | undefined): Target {
  if (ns === undefined || ns === '') return { effective: name };
  const split = splitHost(name);
  if (split && upstreamForHost(config.upstreams, split.host) !== undefined) return { effective: name };
  const host = ns.toLowerCase();
  const full = split?.host.toLowerCase() === host ? name : `${host}/${name}`;
  const key = upstreamForHost(config.upstreams, host);
  if (key === undefined) return { effective: full, nsUnknown: true };
  const bare = key === config.defaultUpstream && bareNameServes(upstreamOf(config, key, 'ns'), host);
  return { effective: bare ? name : full, nsUpstream: key };
}

/** Route when no rule matches: by ns, by host prefix, or to the default upstream. */
function fallback(config: RoutingConfig, name: string, ns: string | undefined, t: Target): Fallback {
  if (t.nsUnknown) {
    throw new RegistryError('NAME_UNKNOWN', `registry host ${JSON.stringify(ns)} (ns) is not configured in upstreams`, { name, ns });
  }
  if (t.nsUpstream !== undefined) {
    const out: Fallback = { upstream: toUpstream(config, t.nsUpstream, nameOn(upstreamOf(config, t.nsUpstream, 'ns'), t.effective, name), 'ns') };
    const local = localName(t.effective);
    if (local !== undefined) out.local = local;
    return out;
  }
  const split = splitHost(name);
  if (split) {
    const key = upstreamForHost(config.upstreams, split.host);
    if (key === undefined) return { local: name, unknownHost: split.host };
    return { local: name, upstream: toUpstream(config, key, nameOn(upstreamOf(config, key, 'host'), name, split.rest), 'host') };
  }
  const out: Fallback = { local: name };
  if (config.defaultUpstream !== undefined) {
    out.upstream = toUpstream(config, config.defaultUpstream, name, 'defaultUpstream');
  }
  return out;
}

/**
 * The name to ask an upstream for: a ferry relay serves several registries and picks one by the
 * name's host, so it gets the host-qualified name; a registry gets the name on itself.
 */
function nameOn(upstream: RoutingUpstream, qualified: string, onRegistry: string): string {
  return upstream.kind === 'relay' ? qualified : onRegistry;
}

/** The name on a rule's upstream when the rule gives no upstreamName: the effective name minus that upstream's host. */
function defaultUpstreamName(upstream: RoutingUpstream, effective: string): string {
  const split = splitHost(effective);
  return split && hostsOf(upstream).includes(split.host.toLowerCase()) ? nameOn(upstream, effective, split.rest) : effective;
}

/**
 * Routes `name` (already taken from the URL) with an optional tag or digest reference and
 * containerd's optional `ns` query parameter. Throws NAME_INVALID for an invalid name,
 * NAME_UNKNOWN for an `ns` no upstream serves, and the reference errors of parseReference.
 */
export function route(config: RoutingConfig, name: string, reference?: string, ns?: string): Route {
  requireName(name);
  const ref = reference === undefined ? undefined : parseReference(reference);
  const t = target(config, name, ns);
  const out: Route = { requested: name };
  if (ref?.kind === 'digest') out.digest = ref.digest;

  const index = config.rewrite.findIndex((rule) => matchPattern(rule.match, t.effective) !== undefined);
  const rule = config.rewrite[index];
  if (rule === undefined) {
    const base = fallback(config, name, ns, t);
    if (base.local !== undefined) out.local = base.local;
    if (base.upstream) out.upstream = base.upstream;
    if (base.unknownHost !== undefined) out.unknownHost = base.unknownHost;
    if (ref?.kind === 'tag') out.tag = ref.tag;
    return out;
  }

  const { capture } = matchPattern(rule.match, t.effective) as { capture?: string };
  out.rule = index;
  const local = rule.local !== undefined ? substitute(rule.local, capture) : localName(t.effective);
  if (local !== undefined) out.local = local;
  if (rule.upstream !== undefined) {
    const where = `rewrite.${index}.upstream`;
    const up = upstreamOf(config, rule.upstream, where);
    const repository = rule.upstreamName !== undefined ? substitute(rule.upstreamName, capture) : defaultUpstreamName(up, t.effective);
    out.upstream = toUpstream(config, rule.upstream, repository, where);
  }
  if (rule.tags) out.tagMap = rule.tags;
  if (ref?.kind === 'tag') out.tag = mapTag(rule.tags, ref.tag);
  return out;
}
