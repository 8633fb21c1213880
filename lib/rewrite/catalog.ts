/**
 * Rewrites read backwards, for listings. `_catalog` shows each local repository and also the
 * names rules serve from it (local `lokolla/nova-api` is also `kollaglue/nova-api` and
 * `kolla/nova-api`), so a client can pull every name it sees. `tags/list` under a rewritten
 * name shows the tags a client can ask for there: the served tags read back through the tag map.
 *
 * Choices: a rule whose match has a `*` but whose local has none (many names, one repository)
 * exposes nothing, since its names cannot be enumerated. A name is exposed only if routing it
 * really leads back to that local repository (first match wins), so the catalog never lists a
 * name that serves something else. Local repositories are listed under their own names even
 * when a rule shadows them: they exist, and gc or sync tools need to see them.
 */
import { isValidName } from '../oci/names.ts';
import { mapTag, matchPattern } from './pattern.ts';
import { route, type Route, type RoutingConfig } from './route.ts';

function exposedName(match: string, local: string, localRepo: string): string | undefined {
  const m = matchPattern(local, localRepo);
  if (m === undefined) return undefined;
  if (match.endsWith('*')) return m.capture === undefined ? undefined : `${match.slice(0, -1)}${m.capture}`;
  return local.includes('*') ? undefined : match;
}

/** A rule that fails for this name (a bad target) hides it from listings rather than failing them. */
function routesTo(config: RoutingConfig, name: string): string | undefined {
  try {
    return route(config, name).local;
  } catch {
    return undefined;
  }
}

/** Other names whose route looks first in local repository `localRepo`, sorted. */
export function namesServedFrom(config: RoutingConfig, localRepo: string): string[] {
  const names = new Set<string>();
  for (const rule of config.rewrite) {
    if (rule.local === undefined) continue;
    const name = exposedName(rule.match, rule.local, localRepo);
    if (name === undefined || name === localRepo || !isValidName(name)) continue;
    if (routesTo(config, name) === localRepo) names.add(name);
  }
  return [...names].sort();
}

/** The `_catalog` list: local repositories plus the names rules serve from them, sorted, once each. */
export function catalogNames(config: RoutingConfig, localRepos: Iterable<string>): string[] {
  const names = new Set<string>();
  for (const repo of localRepos) {
    names.add(repo);
    for (const name of namesServedFrom(config, repo)) names.add(name);
  }
  // Plain code-unit order, as distribution sorts and `last=` pagination expects.
  return [...names].sort();
}

/**
 * The tags a client may ask for under the route's requested name, given the tags the served
 * repository holds: each tag T such that tagMap[T] ?? T is held. Sorted.
 */
export function requestedTags(r: Pick<Route, 'tagMap'>, servedTags: Iterable<string>): string[] {
  const held = new Set(servedTags);
  const visible = new Set<string>();
  for (const tag of [...held, ...Object.keys(r.tagMap ?? {})]) {
    if (held.has(mapTag(r.tagMap, tag))) visible.add(tag);
  }
  return [...visible].sort();
}
