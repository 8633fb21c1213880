/**
 * Push protection for the mirror's /v2/ API, with Docker's token flow so that anonymous pulls and
 * authenticated pushes both work from one Docker daemon:
 *
 * - `GET /v2/` answers 401 with `WWW-Authenticate: Bearer realm=".../auth/token"` whenever auth is
 *   configured (as distribution does): `docker login` validates credentials only against a
 *   challenging /v2/, and Docker sends credentials only to registries whose /v2/ challenged.
 * - A Basic challenge cannot do it: Docker 20.10 then refuses to pull at all without credentials
 *   ("no basic auth credentials"). With a Bearer challenge it fetches a token anonymously
 *   (pull-only here) and pulls; after `docker login` it fetches one with the user's Basic
 *   credentials (pull and push).
 * - Writes (POST, PUT, PATCH, DELETE) need a user of the htpasswd file; reads need one only with
 *   `protectPull`. Basic credentials sent straight to /v2/ (curl, scripts) work too.
 * - Wrong credentials are refused everywhere, so a mistyped password shows at once.
 */
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import { RegistryError } from '../../lib/oci/errors.ts';
import { sendError } from '../errors.ts';
import { safeDecode } from '../v2/router.ts';
import type { Htpasswd } from './htpasswd.ts';
import { TokenIssuer, allows, parseScope, type Action, type Grant } from './tokens.ts';

export interface RegistryAuthOptions {
  htpasswd: Htpasswd;
  /** The token `service` and the name shown by clients. */
  realm: string;
  protectPull: boolean;
  issuer?: TokenIssuer;
}

export const TOKEN_PATH = '/auth/token';

export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (!m) return undefined;
  const text = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

interface Need {
  /** undefined for /v2/ itself: any valid identity will do. */
  grant?: { type: string; name: string; action: Action };
}

const REPO_PATH = /^\/(.+)\/(manifests|blobs|tags|referrers)(\/|$)/;

function needOf(req: Request): Need {
  const path = req.path;
  if (path === '/' || path === '') return {};
  const action: Action = req.method === 'DELETE' ? 'delete' : req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'push';
  if (path === '/_catalog') return { grant: { type: 'registry', name: 'catalog', action: 'pull' } };
  const m = REPO_PATH.exec(safeDecode(path));
  return { grant: { type: 'repository', name: m?.[1] ?? path.slice(1), action } };
}

export class RegistryAuth {
  readonly issuer: TokenIssuer;
  private readonly service: string;

  constructor(private readonly opts: RegistryAuthOptions) {
    this.issuer = opts.issuer ?? new TokenIssuer();
    this.service = opts.realm.replace(/["\\]/g, '');
  }

  /** Mounts the token endpoint (outside /v2/, never behind the guard). */
  mount(app: Express): void {
    app.get(TOKEN_PATH, (req, res, next) => {
      res.locals.route = 'token';
      this.token(req, res).catch(next);
    });
  }

  /** The /v2/ guard. */
  readonly guard: RequestHandler = (req, res, next) => {
    this.check(req, res, next).catch(next);
  };

  private async check(req: Request, res: Response, next: NextFunction): Promise<void> {
    const need = needOf(req);
    const header = req.headers.authorization;
    const open = need.grant?.action === 'pull' && !this.opts.protectPull;
    if (header === undefined) {
      if (open) return next();
      return this.refuse(req, res, need, 'authentication required');
    }
    const basic = parseBasic(header);
    if (basic) {
      if (await this.opts.htpasswd.verify(basic.user, basic.password)) {
        res.locals.user = basic.user;
        return next();
      }
      req.log?.warn({ user: basic.user, method: req.method, path: req.originalUrl }, 'authentication failed');
      return this.refuse(req, res, need, 'invalid username or password');
    }
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    const claims = bearer ? this.issuer.verify(bearer) : undefined;
    if (!claims) return this.refuse(req, res, need, 'invalid or expired token', 'invalid_token');
    if (claims.sub) res.locals.user = claims.sub;
    if (!need.grant || open || allows(claims, need.grant.type, need.grant.name, need.grant.action)) return next();
    return this.refuse(req, res, need, claims.sub ? `${claims.sub} may not ${need.grant.action} ${need.grant.name}` : 'authentication required', 'insufficient_scope');
  }

  private refuse(req: Request, res: Response, need: Need, message: string, error?: string): void {
    const realm = `${req.protocol}://${req.headers.host ?? 'localhost'}${TOKEN_PATH}`;
    let challenge = `Bearer realm="${realm}",service="${this.service}"`;
    if (need.grant) {
      const actions = need.grant.action === 'pull' ? 'pull' : `pull,${need.grant.action}`;
      challenge += `,scope="${need.grant.type}:${need.grant.name}:${actions}"`;
    }
    if (error) challenge += `,error="${error}"`;
    res.locals.errorCode = 'UNAUTHORIZED';
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    sendError(res, new RegistryError('UNAUTHORIZED', message, undefined, { headers: { 'WWW-Authenticate': challenge } }));
  }

  /** GET /auth/token?service=&scope=...: users get what they ask for; anonymous callers get pulls when open. */
  private async token(req: Request, res: Response): Promise<void> {
    res.setHeader('Cache-Control', 'no-store');
    const basic = parseBasic(req.headers.authorization);
    let user = '';
    if (basic) {
      if (!(await this.opts.htpasswd.verify(basic.user, basic.password))) {
        req.log?.warn({ user: basic.user }, 'authentication failed');
        sendError(res, new RegistryError('UNAUTHORIZED', 'invalid username or password'));
        return;
      }
      user = basic.user;
    } else if (this.opts.protectPull) {
      sendError(res, new RegistryError('UNAUTHORIZED', 'authentication required', undefined, {
        headers: { 'WWW-Authenticate': `Basic realm="${this.service}", charset="UTF-8"` },
      }));
      return;
    }
    const raw = req.query.scope;
    const scopes = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).flatMap((s) => String(s).split(' '));
    const access: Grant[] = [];
    for (const s of scopes) {
      const g = parseScope(s);
      if (!g) continue;
      // Anonymous callers get reads only, and only when pulls are open (checked above).
      const actions = user ? g.actions : g.actions.filter((a) => a === 'pull');
      if (actions.length > 0) access.push({ ...g, actions });
    }
    const { token, expiresIn } = this.issuer.issue(user, access);
    res.json({ token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() });
  }
}
