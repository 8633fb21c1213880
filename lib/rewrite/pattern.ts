/**
 * Rewrite-rule patterns: `kollaglue/*` matches `kollaglue/centos-source-heka` and captures
 * `centos-source-heka`; a pattern without `*` matches only itself. A target (`local`,
 * `upstreamName`) gets the capture in place of its `*`.
 */
import { isValidName, isValidTag } from '../oci/names.ts';
import { RegistryError } from '../oci/errors.ts';
import type { RewriteRule } from '../config/schema.ts';

export interface PatternMatch {
  /** What the trailing `*` matched; undefined for an exact pattern. */
  capture?: string;
}

export function matchPattern(pattern: string, name: string): PatternMatch | undefined {
  if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    // The star stands for at least one character: `kollaglue/*` does not match `kollaglue`.
    return name.length > prefix.length && name.startsWith(prefix) ? { capture: name.slice(prefix.length) } : undefined;
  }
  return pattern === name ? {} : undefined;
}

/** Puts the capture in place of `*`; the result must be a valid repository name. */
export function substitute(template: string, capture: string | undefined): string {
  let name = template;
  if (template.includes('*')) {
    if (capture === undefined) {
      throw new RegistryError('UNKNOWN', `rewrite target ${JSON.stringify(template)} has * but its pattern captures nothing`);
    }
    name = template.replace('*', capture);
  }
  if (!isValidName(name)) {
    throw new RegistryError('NAME_INVALID', `rewrite gives an invalid repository name: ${JSON.stringify(name)}`, { name });
  }
  return name;
}

/**
 * Problems a rule list can have that the schema does not catch, each prefixed by its key path
 * (`rewrite.0.local: ...`). Meant for the config loader; empty when all is well.
 */
export function checkRewriteRules(rules: readonly RewriteRule[]): string[] {
  const problems: string[] = [];
  rules.forEach((rule, i) => {
    const at = `rewrite.${i}`;
    const stars = rule.match.split('*').length - 1;
    if (stars > 1 || (stars === 1 && !rule.match.endsWith('*'))) {
      problems.push(`${at}.match: only one *, at the end, is allowed (got ${JSON.stringify(rule.match)})`);
    }
    for (const field of ['local', 'upstreamName'] as const) {
      const target = rule[field];
      if (target === undefined) continue;
      const targetStars = target.split('*').length - 1;
      if (targetStars > 1) problems.push(`${at}.${field}: at most one * is allowed`);
      else if (targetStars === 1 && stars === 0) problems.push(`${at}.${field}: has * but match has none to fill it`);
      else if (!isValidName(target.replace('*', 'x'))) problems.push(`${at}.${field}: not a repository name pattern`);
    }
    for (const [from, to] of Object.entries(rule.tags ?? {})) {
      if (!isValidTag(from)) problems.push(`${at}.tags: invalid tag ${JSON.stringify(from)}`);
      if (!isValidTag(to)) problems.push(`${at}.tags.${from}: invalid tag ${JSON.stringify(to)}`);
    }
  });
  return problems;
}

/** The served tag for a requested one; own keys only, so a tag named `constructor` is just a tag. */
export function mapTag(tagMap: Readonly<Record<string, string>> | undefined, tag: string): string {
  return tagMap !== undefined && Object.hasOwn(tagMap, tag) ? (tagMap[tag] as string) : tag;
}
