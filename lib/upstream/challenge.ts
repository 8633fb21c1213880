/**
 * WWW-Authenticate parsing (RFC 9110 §11.6.1), pure. Registries send
 * `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"`;
 * scopes hold commas (`pull,push`), several challenges may share one header or come in several,
 * and some servers forget the quotes. Parameter names are case-insensitive and returned lower-case.
 */

export interface Challenge {
  /** Lower-case: 'bearer', 'basic', ... */
  scheme: string;
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), when that is what followed the scheme. */
  token68?: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
const TOKEN68 = /^[A-Za-z0-9._~+/-]+=*(?=\s*(?:,|$))/;
const PARAM = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))/;

export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseChallenges(h));
  const out: Challenge[] = [];
  let rest = header;
  const skip = (re: RegExp): void => {
    rest = rest.replace(re, '');
  };
  for (;;) {
    skip(/^[\s,]+/);
    const scheme = TOKEN.exec(rest);
    if (!scheme) break;
    rest = rest.slice(scheme[0].length);
    const challenge: Challenge = { scheme: scheme[0].toLowerCase(), params: {} };
    out.push(challenge);
    skip(/^[ \t]+/);
    const t68 = TOKEN68.exec(rest);
    if (t68) {
      challenge.token68 = t68[0];
      rest = rest.slice(t68[0].length);
      continue;
    }
    // Parameters until something that is not `name=value` (the next challenge's scheme).
    for (;;) {
      skip(/^[\s,]+/);
      const m = PARAM.exec(rest);
      if (!m) break;
      const name = (m[1] as string).toLowerCase();
      challenge.params[name] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
      rest = rest.slice(m[0].length);
    }
  }
  return out;
}

/** The challenge to answer: Bearer when offered (it is the registry's preferred one), else Basic. */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic') ?? challenges[0];
}
