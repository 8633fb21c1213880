/**
 * Authentication against one upstream. A registry tells us how in its 401 challenge; we remember
 * the answer, so later requests send credentials (Basic) or a token (Bearer) up front instead of
 * paying a refused round trip each time over the slow link. Bearer tokens are cached per scope
 * until shortly before they expire, and concurrent requests for one scope share one token fetch
 * (a chunked download starts dozens of range requests at once). A ferry relay uses one static
 * bearer token: nothing to negotiate, and a 401 from it is final.
 */
import type { UpstreamConfig } from '../config/schema.ts';
import { parseChallenges, pickChallenge, type Challenge } from './challenge.ts';
import { UpstreamAuthError, UpstreamProtocolError } from './errors.ts';

export { parseChallenges, pickChallenge, type Challenge } from './challenge.ts';

/** Tokens without expires_in live 60 s (distribution's token spec). */
export const DEFAULT_TOKEN_SECONDS = 60;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;

/** Renew before expiry by a fifth of the lifetime, at most 30 s, so a token never dies in flight. */
export function tokenLifetimeMs(expiresInSeconds: number): number {
  const margin = Math.min(30, expiresInSeconds * 0.2);
  return Math.max(0, (expiresInSeconds - margin) * 1000);
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** A token endpoint's answer, already fetched (with retries) by the client. */
export interface TokenResponse {
  status: number;
  body: Buffer;
}

export type TokenFetcher = (url: URL, headers: Record<string, string>) => Promise<TokenResponse>;

type AuthConfig = Pick<UpstreamConfig, 'kind' | 'username' | 'password' | 'token'>;

interface CachedToken {
  value: string;
  expiresAt: number;
}

export class UpstreamAuth {
  private basicKnown = false;
  private bearer: { realm: string; service: string | undefined } | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(
    private readonly upstream: string,
    private readonly cfg: AuthConfig,
    private readonly fetchToken: TokenFetcher,
    private readonly now: () => number = Date.now,
  ) {}

  /** A relay answers 401 only to a wrong token: asking again cannot help. */
  get negotiates(): boolean {
    return this.cfg.kind !== 'relay';
  }

  private get basic(): string | undefined {
    return this.cfg.username !== undefined ? basicAuthorization(this.cfg.username, this.cfg.password ?? '') : undefined;
  }

  /** The Authorization header to send first for a request in `scope`, if any is known to be needed. */
  async authorization(scope: string | undefined): Promise<string | undefined> {
    if (this.cfg.kind === 'relay') return this.cfg.token !== undefined ? `Bearer ${this.cfg.token}` : undefined;
    if (this.bearer) return `Bearer ${await this.token(scope)}`;
    if (this.basicKnown) return this.basic;
    return undefined;
  }

  /**
   * A request sent with `sent` was answered 401 with `wwwAuthenticate`: returns the header to try
   * once more with, or throws UpstreamAuthError when no answer can help.
   */
  async answer(wwwAuthenticate: string | string[] | undefined, scope: string | undefined, sent: string | undefined): Promise<string> {
    if (this.cfg.kind === 'relay') throw new UpstreamAuthError(this.upstream, 'the relay refused our token', 401);
    const challenge = pickChallenge(parseChallenges(wwwAuthenticate));
    if (challenge?.scheme === 'bearer') {
      const realm = challenge.params.realm;
      if (!realm) throw new UpstreamProtocolError(this.upstream, 'Bearer challenge without a realm', 401);
      this.bearer = { realm, service: challenge.params.service };
      return `Bearer ${await this.token(scope, { sent, challenge })}`;
    }
    if (challenge?.scheme === 'basic') {
      const basic = this.basic;
      if (!basic) throw new UpstreamAuthError(this.upstream, 'asks for credentials and none are configured', 401);
      if (sent === basic) throw new UpstreamAuthError(this.upstream, 'refused the configured credentials', 401);
      this.basicKnown = true;
      return basic;
    }
    throw new UpstreamAuthError(this.upstream, `answered 401 with ${challenge ? `an unsupported ${challenge.scheme} challenge` : 'no usable challenge'}`, 401);
  }

  /** True when a final 401 says the credentials are fine but do not reach this repository. */
  static insufficientScope(wwwAuthenticate: string | string[] | undefined): boolean {
    return parseChallenges(wwwAuthenticate).some((c) => c.params.error === 'insufficient_scope');
  }

  private cacheKey(scope: string | undefined): string {
    return `${this.bearer?.realm ?? ''} ${this.bearer?.service ?? ''} ${scope ?? ''}`;
  }

  /**
   * A cached token for `scope`, or one fetched now: one fetch per scope however many ask, and not
   * tied to any one request's signal since the others wait on it too. With `refresh` (a 401), the
   * token that was refused is dropped, unless another request already replaced it.
   */
  private async token(scope: string | undefined, refresh?: { sent: string | undefined; challenge: Challenge }): Promise<string> {
    const key = this.cacheKey(scope);
    const cached = this.tokens.get(key);
    const usable = cached !== undefined && cached.expiresAt > this.now();
    if (usable && (!refresh || refresh.sent !== `Bearer ${cached.value}`)) return cached.value;
    if (refresh) this.tokens.delete(key);
    let pending = this.fetching.get(key);
    if (!pending) {
      // The challenge's scope is what the registry wants for this very request; ours is the default.
      pending = this.requestToken(refresh?.challenge.params.scope ?? scope).then((t) => {
        this.tokens.set(key, { value: t.value, expiresAt: this.now() + tokenLifetimeMs(t.expiresIn) });
        return t.value;
      });
      this.fetching.set(key, pending);
      const forget = (): void => {
        this.fetching.delete(key);
      };
      pending.then(forget, forget);
    }
    return pending;
  }

  private async requestToken(scope: string | undefined): Promise<{ value: string; expiresIn: number }> {
    const bearer = this.bearer;
    if (!bearer) throw new Error('no Bearer challenge known');
    let url: URL;
    try {
      url = new URL(bearer.realm);
    } catch {
      throw new UpstreamProtocolError(this.upstream, `token realm is not a URL: ${bearer.realm}`);
    }
    if (bearer.service !== undefined) url.searchParams.set('service', bearer.service);
    if (scope) url.searchParams.set('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    const basic = this.basic;
    if (basic) headers.authorization = basic;
    const res = await this.fetchToken(url, headers);
    if (res.status === 401 || res.status === 403) {
      throw new UpstreamAuthError(this.upstream, `token endpoint refused ${basic ? 'the configured credentials' : 'an anonymous request'}`, res.status);
    }
    if (res.status !== 200) throw new UpstreamProtocolError(this.upstream, `token endpoint answered ${res.status}`, res.status);
    if (res.body.length > MAX_TOKEN_RESPONSE_BYTES) throw new UpstreamProtocolError(this.upstream, 'token response too large');
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      json = JSON.parse(res.body.toString('utf8')) as typeof json;
    } catch {
      throw new UpstreamProtocolError(this.upstream, 'token response is not JSON');
    }
    const value = typeof json.token === 'string' && json.token ? json.token : json.access_token;
    if (typeof value !== 'string' || !value) throw new UpstreamProtocolError(this.upstream, 'token response holds no token');
    const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_TOKEN_SECONDS;
    return { value, expiresIn };
  }
}
