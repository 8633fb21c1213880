/**
 * Short-lived bearer tokens the mirror issues itself (Docker's token flow, without a separate
 * token server): a base64url JSON claim set and its HMAC-SHA256 under a per-process key. A
 * restart invalidates them; clients fetch a new one on the next 401, as they do on expiry.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export type Action = 'pull' | 'push' | 'delete';

export interface Grant {
  /** "repository" (or "registry" for the catalog). */
  type: string;
  name: string;
  actions: Action[];
}

export interface Claims {
  sub: string;
  access: Grant[];
  exp: number;
}

/** "repository:lokolla/base:pull,push" -> a grant request; undefined when malformed. */
export function parseScope(scope: string): Grant | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last <= first) return undefined;
  const actions = scope.slice(last + 1).split(',').map((a) => (a === '*' ? 'delete' : a)).filter((a): a is Action => a === 'pull' || a === 'push' || a === 'delete');
  // "*" asks for everything.
  if (scope.endsWith(':*')) actions.push('pull', 'push');
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: [...new Set(actions)] };
}

export class TokenIssuer {
  private readonly key: Buffer;

  constructor(readonly ttlSeconds = 300, key: Buffer = randomBytes(32)) {
    this.key = key;
  }

  issue(sub: string, access: Grant[], now = Date.now()): { token: string; expiresIn: number } {
    const claims: Claims = { sub, access, exp: Math.floor(now / 1000) + this.ttlSeconds };
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { token: `${body}.${this.sign(body)}`, expiresIn: this.ttlSeconds };
  }

  /** The claims of a valid, unexpired token; undefined otherwise. */
  verify(token: string, now = Date.now()): Claims | undefined {
    const dot = token.indexOf('.');
    if (dot <= 0) return undefined;
    const body = token.slice(0, dot);
    const mac = Buffer.from(token.slice(dot + 1));
    const expected = Buffer.from(this.sign(body));
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Claims;
      return claims.exp * 1000 > now ? claims : undefined;
    } catch {
      return undefined;
    }
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}

export function allows(claims: Claims, type: string, name: string, action: Action): boolean {
  return claims.access.some((g) => g.type === type && g.name === name && g.actions.includes(action));
}
