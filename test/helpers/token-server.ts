/**
 * A Docker token server (distribution's token auth spec) issuing real JWTs that distribution 2.8
 * accepts: signed ES256 or RS256 with a generated key, the self-signed certificate in the `x5c`
 * header (distribution verifies the chain against its `rootcertbundle`), and `aud` as a single
 * string (2.8 does not accept an audience list). Every token request is recorded.
 */
import { X509Certificate, createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { onExitSync, runChecked } from './processes.ts';

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenRequestRecord {
  method: 'GET' | 'POST';
  /** The authenticated user, or undefined for an anonymous request. */
  user: string | undefined;
  service: string;
  scopes: string[];
  granted: Access[];
  status: number;
  at: number;
}

export interface TokenServerOptions {
  /** user -> password; Basic credentials (or a POST password grant) must match one of these. */
  users?: Record<string, string>;
  /** Anonymous requests get pull access (otherwise nothing). Default false. */
  anonymousPull?: boolean;
  alg?: 'ES256' | 'RS256';
  /** Token lifetime in seconds; default 300. */
  expiresIn?: number;
  issuer?: string;
  /** Overrides the grant policy: which of the requested actions `user` gets. */
  grant?: (user: string | undefined, requested: Access) => string[];
}

export interface TokenServer {
  /** http://127.0.0.1:PORT */
  url: string;
  /** The realm to configure in the registry: url + '/token'. */
  realm: string;
  issuer: string;
  /** PEM of the self-signed certificate: the registry's rootcertbundle. */
  certPath: string;
  requests: TokenRequestRecord[];
  /** Number of token requests answered so far (any status). */
  readonly count: number;
  reset(): void;
  /** Mints a token directly, e.g. an expired one (expiresIn < 0) or one for another audience. */
  issue(service: string, access: Access[], opts?: { subject?: string; expiresIn?: number; issuer?: string }): string;
  close(): Promise<void>;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/** Parses `repository:name:pull,push`; the name itself may not contain ':' but the type may carry `(class)`. */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter(Boolean),
  };
}

async function makeKeyAndCert(dir: string, alg: 'ES256' | 'RS256'): Promise<{ key: KeyObject; certPath: string; certDer: Buffer }> {
  const keyPath = path.join(dir, 'key.pem');
  const certPath = path.join(dir, 'cert.pem');
  const newkey = alg === 'ES256' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048'];
  await runChecked('openssl', [
    'req', '-x509', ...newkey, '-nodes', '-sha256', '-days', '3650',
    '-subj', '/CN=ferry-test-token-server', '-keyout', keyPath, '-out', certPath,
  ]);
  const key = createPrivateKey(readFileSync(keyPath));
  const certDer = new X509Certificate(readFileSync(certPath)).raw;
  return { key, certPath, certDer };
}

function basicUser(req: IncomingMessage): { user: string; password: string } | undefined {
  const h = req.headers.authorization;
  if (!h?.toLowerCase().startsWith('basic ')) return undefined;
  const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  return { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startTokenServer(opts: TokenServerOptions = {}): Promise<TokenServer> {
  const alg = opts.alg ?? 'ES256';
  const issuer = opts.issuer ?? 'ferry-test-token-server';
  const expiresIn = opts.expiresIn ?? 300;
  const users = opts.users ?? {};
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-token-'));
  const unregister = onExitSync(() => rmSync(dir, { recursive: true, force: true }));
  const { key, certPath, certDer } = await makeKeyAndCert(dir, alg);
  const refreshTokens = new Map<string, string>();
  const requests: TokenRequestRecord[] = [];

  const issue: TokenServer['issue'] = (service, access, o = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg, x5c: [certDer.toString('base64')] };
    const claims = {
      iss: o.issuer ?? issuer,
      sub: o.subject ?? '',
      aud: service,
      exp: now + (o.expiresIn ?? expiresIn),
      nbf: now - 10,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    // JWS wants ECDSA signatures as raw r||s, not DER.
    const sig = alg === 'ES256'
      ? sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', Buffer.from(signingInput), key);
    return `${signingInput}.${b64url(sig)}`;
  };

  const grantFor = (user: string | undefined, requested: Access): string[] => {
    if (opts.grant) return opts.grant(user, requested);
    if (user !== undefined) return requested.actions;
    return opts.anonymousPull ? requested.actions.filter((a) => a === 'pull') : [];
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      res.writeHead(404).end();
      return;
    }
    const method = req.method;
    let params = url.searchParams;
    let user: string | undefined;
    let authFailed = false;
    let wantsRefresh = false;
    if (method === 'POST') {
      // OAuth2 flavour (what docker/containerd use with identity tokens): form-encoded grants.
      params = new URLSearchParams(await readBody(req));
      const grantType = params.get('grant_type');
      if (grantType === 'password') {
        const u = params.get('username') ?? '';
        if (users[u] !== undefined && users[u] === params.get('password')) user = u;
        else authFailed = true;
        wantsRefresh = params.get('access_type') === 'offline';
      } else if (grantType === 'refresh_token') {
        user = refreshTokens.get(params.get('refresh_token') ?? '');
        if (user === undefined) authFailed = true;
      } else {
        authFailed = true;
      }
    } else {
      const creds = basicUser(req);
      if (creds) {
        if (users[creds.user] !== undefined && users[creds.user] === creds.password) user = creds.user;
        else authFailed = true;
      }
      wantsRefresh = params.get('offline_token') === 'true';
    }
    const service = params.get('service') ?? '';
    const scopes = params.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    const record: TokenRequestRecord = { method, user, service, scopes, granted: [], status: 200, at: Date.now() };
    requests.push(record);
    if (authFailed) {
      record.status = 401;
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid credentials' }] }));
      return;
    }
    for (const s of scopes) {
      const requested = parseScope(s);
      if (!requested) continue;
      const actions = grantFor(user, requested);
      if (actions.length) record.granted.push({ ...requested, actions });
    }
    const token = issue(service, record.granted, { subject: user ?? '' });
    const body: Record<string, unknown> = { token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() };
    if (wantsRefresh && user !== undefined) {
      const rt = randomBytes(16).toString('hex');
      refreshTokens.set(rt, user);
      body.refresh_token = rt;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    realm: `${url}/token`,
    issuer,
    certPath,
    requests,
    get count() {
      return requests.length;
    },
    reset() {
      requests.length = 0;
    },
    issue,
    close() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          unregister();
          resolve();
        });
      });
    },
  };
}
