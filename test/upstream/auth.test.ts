import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { digestOf } from '../../lib/oci/digest.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { basicAuthorization } from '../../lib/upstream/auth.ts';
import { UpstreamAuthError } from '../../lib/upstream/errors.ts';
import { json, startServer, testClient, type TestServer } from './http-server.ts';
import { toRegistryError } from '../../server/errors.ts';

const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: {}, layers: [] }));

function serveManifest(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': MEDIA.ociManifest, 'content-length': String(manifest.length), 'docker-content-digest': digestOf(manifest) });
  res.end(manifest);
}

interface TokenRegistry {
  registry: TestServer;
  tokens: TestServer;
  /** Tokens the registry accepts. */
  valid: Set<string>;
  tokenRequests: URL[];
}

/**
 * A registry demanding Bearer tokens from a token server on another origin. `body` shapes the
 * token answer; `users` are checked when given (Basic on the token request).
 */
async function startTokenRegistry(opts: { body?: (token: string) => Record<string, unknown>; users?: Record<string, string>; scopeInChallenge?: boolean } = {}): Promise<TokenRegistry> {
  const valid = new Set<string>();
  const tokenRequests: URL[] = [];
  let n = 0;
  const tokens = await startServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    tokenRequests.push(url);
    if (opts.users) {
      const want = Object.entries(opts.users).map(([u, p]) => basicAuthorization(u, p));
      if (!want.includes(req.headers.authorization ?? '')) return json(res, 401, { details: 'bad credentials' });
    }
    const token = `tok-${++n}`;
    valid.add(token);
    json(res, 200, opts.body ? opts.body(token) : { token, expires_in: 300 });
  });
  const registry = await startServer((req: IncomingMessage, res: ServerResponse) => {
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !valid.has(auth.slice(7))) {
      const repo = /^\/v2\/(.+)\/(?:manifests|blobs|tags)\//.exec(req.url ?? '')?.[1];
      const scope = repo && opts.scopeInChallenge !== false ? `,scope="repository:${repo}:pull"` : '';
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="test-registry"${scope}` });
    }
    if (req.url === '/v2/') return json(res, 200, {});
    serveManifest(res);
  });
  return { registry, tokens, valid, tokenRequests };
}

describe('UpstreamClient: Bearer token auth', () => {
  let t: TokenRegistry;
  afterEach(async () => {
    await t?.registry.close();
    await t?.tokens.close();
  });

  it('answers a Bearer challenge with an anonymous token for the repository scope', async () => {
    t = await startTokenRegistry();
    const client = testClient(t.registry.url);
    assert.deepEqual((await client.getManifest('app/web', 'v1')).bytes, manifest);
    assert.equal(t.tokenRequests.length, 1);
    assert.equal(t.tokenRequests[0]?.searchParams.get('service'), 'test-registry');
    assert.equal(t.tokenRequests[0]?.searchParams.get('scope'), 'repository:app/web:pull');
    assert.equal(t.tokens.requests[0]?.headers.authorization, undefined, 'anonymous without credentials');
    assert.deepEqual(t.registry.requests.map((r) => r.headers.authorization), [undefined, 'Bearer tok-1']);
    await client.close();
  });

  it('sends the configured credentials to the token endpoint', async () => {
    t = await startTokenRegistry({ users: { bob: 's3cret' } });
    const client = testClient(t.registry.url, { username: 'bob', password: 's3cret' });
    await client.getManifest('app', 'v1');
    assert.equal(t.tokens.requests[0]?.headers.authorization, basicAuthorization('bob', 's3cret'));
    assert.equal(t.registry.requests.some((r) => r.headers.authorization?.startsWith('Basic')), false, 'the password never goes to the registry');
    await client.close();
  });

  it('fails with UpstreamAuthError (DENIED, not a 401) when the token endpoint refuses the credentials', async () => {
    t = await startTokenRegistry({ users: { bob: 's3cret' } });
    const client = testClient(t.registry.url, { username: 'bob', password: 'wrong' });
    const err = await client.getManifest('app', 'v1').catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamAuthError, String(err));
    assert.equal(toRegistryError(err).status, 403);
    await client.close();
  });

  it('reuses a token for its scope until shortly before it expires', async () => {
    let now = 1_000_000;
    t = await startTokenRegistry({ body: (token) => ({ token, expires_in: 60 }) });
    const client = testClient(t.registry.url, {}, () => now);
    await client.getManifest('app', 'v1');
    await client.getManifest('app', 'v2');
    now += 47_000;
    await client.headManifest('app', 'v1');
    assert.equal(t.tokenRequests.length, 1, 'one token for three requests within its life');
    assert.equal(t.registry.requests.length, 4, 'one 401, then tokens sent up front');
    now += 2_000;
    await client.getManifest('app', 'v1');
    assert.equal(t.tokenRequests.length, 2, 'renewed 11 s before expiry');
    await client.close();
  });

  it('fetches a token per scope and sends it up front for a new repository', async () => {
    t = await startTokenRegistry();
    const client = testClient(t.registry.url);
    await client.getManifest('a', 'v1');
    await client.getManifest('b', 'v1');
    assert.deepEqual(t.tokenRequests.map((u) => u.searchParams.get('scope')), ['repository:a:pull', 'repository:b:pull']);
    assert.equal(t.registry.requests.length, 3, 'only the very first request is refused');
    await client.close();
  });

  it('lives 60 s with a token that has no expires_in, and accepts access_token', async () => {
    let now = 0;
    t = await startTokenRegistry({ body: (token) => ({ access_token: token }) });
    const client = testClient(t.registry.url, {}, () => now);
    await client.getManifest('app', 'v1');
    now += 47_000;
    await client.getManifest('app', 'v1');
    assert.equal(t.tokenRequests.length, 1);
    now += 2_000;
    await client.getManifest('app', 'v1');
    assert.equal(t.tokenRequests.length, 2);
    await client.close();
  });

  it('drops a cached token the registry refuses, fetches a new one and retries once', async () => {
    t = await startTokenRegistry();
    const client = testClient(t.registry.url);
    await client.getManifest('app', 'v1');
    t.valid.clear();
    await client.getManifest('app', 'v1');
    assert.equal(t.tokenRequests.length, 2);
    assert.deepEqual(t.registry.requests.map((r) => r.headers.authorization), [undefined, 'Bearer tok-1', 'Bearer tok-1', 'Bearer tok-2']);
    await client.close();
  });

  it('gives up with UpstreamAuthError after one refused retry, and reports insufficient scope', async () => {
    t = await startTokenRegistry();
    // A registry that refuses every token, as Docker Hub does for a repository that does not exist.
    const refusing = await startServer((_req, res) => json(res, 401, {}, {
      'www-authenticate': `Bearer realm="${t.tokens.url}/token",service="s",scope="repository:app:pull",error="insufficient_scope"`,
    }));
    const client = testClient(refusing.url);
    const err = await client.getManifest('app', 'v1').catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamAuthError && err.insufficientScope, String(err));
    assert.equal(refusing.requests.length, 2, 'one retry with a token, no more');
    assert.match(toRegistryError(err).message, /does not exist there/);
    await client.getManifest('app', 'v1').catch((e: unknown) => e);
    assert.equal(refusing.requests.length, 4, 'the cached token, then one fresh one');
    assert.equal(t.tokenRequests.length, 2);
    assert.deepEqual(refusing.requests.slice(2).map((r) => r.headers.authorization), ['Bearer tok-1', 'Bearer tok-2']);
    await Promise.all([client.close(), refusing.close()]);
  });

  it('shares one token fetch among concurrent requests for a scope', async () => {
    t = await startTokenRegistry();
    const client = testClient(t.registry.url);
    await Promise.all(Array.from({ length: 10 }, () => client.getManifest('app', 'v1')));
    assert.equal(t.tokenRequests.length, 1);
    await client.close();
  });

  it('pings with a token that has no scope', async () => {
    t = await startTokenRegistry({ scopeInChallenge: false });
    const client = testClient(t.registry.url);
    await client.ping();
    assert.equal(t.tokenRequests[0]?.searchParams.has('scope'), false);
    await client.close();
  });
});

describe('UpstreamClient: Basic auth', () => {
  let server: TestServer;
  afterEach(async () => server?.close());

  const basicRegistry = (): Promise<TestServer> => startServer((req, res) => {
    if (req.headers.authorization !== basicAuthorization('alice', 'pw')) {
      return json(res, 401, {}, { 'www-authenticate': 'Basic realm="registry"' });
    }
    serveManifest(res);
  });

  it('answers a Basic challenge with the credentials, then sends them up front', async () => {
    server = await basicRegistry();
    const client = testClient(server.url, { username: 'alice', password: 'pw' });
    await client.getManifest('app', 'v1');
    await client.getManifest('app', 'v2');
    assert.deepEqual(server.requests.map((r) => r.headers.authorization), [undefined, basicAuthorization('alice', 'pw'), basicAuthorization('alice', 'pw')]);
    await client.close();
  });

  it('fails with UpstreamAuthError on wrong credentials, after one try with them', async () => {
    server = await basicRegistry();
    const client = testClient(server.url, { username: 'alice', password: 'nope' });
    await assert.rejects(client.getManifest('app', 'v1'), UpstreamAuthError);
    assert.equal(server.requests.length, 2);
    await client.close();
  });

  it('fails with UpstreamAuthError when credentials are asked for and none are configured', async () => {
    server = await basicRegistry();
    const client = testClient(server.url);
    await assert.rejects(client.getManifest('app', 'v1'), /none are configured/);
    await client.close();
  });
});

describe('UpstreamClient: relay', () => {
  let server: TestServer;
  afterEach(async () => server?.close());

  it('sends the relay token on every request', async () => {
    server = await startServer((_req, res) => serveManifest(res));
    const client = testClient(server.url, { kind: 'relay', token: 'relay-token-0123456789' });
    await client.getManifest('app', 'v1');
    await client.headManifest('app', 'v1');
    assert.deepEqual(server.requests.map((r) => r.headers.authorization), ['Bearer relay-token-0123456789', 'Bearer relay-token-0123456789']);
    await client.close();
  });

  it('takes a 401 from the relay as final: no token dance, DENIED', async () => {
    server = await startServer((_req, res) => json(res, 401, {}, { 'www-authenticate': `Bearer realm="http://127.0.0.1:1/token"` }));
    const client = testClient(server.url, { kind: 'relay', token: 'wrong-token-0123456789' });
    const err = await client.getManifest('app', 'v1').catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamAuthError, String(err));
    assert.equal(server.requests.length, 1);
    assert.equal(toRegistryError(err).code, 'DENIED');
    await client.close();
  });
});
