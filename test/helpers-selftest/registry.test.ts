import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { buildImage, buildIndex, writeOciLayout, type BuiltImage } from '../helpers/oci-image.ts';
import { waitFor } from '../helpers/processes.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { startTokenServer, type TokenServer } from '../helpers/token-server.ts';
import { startCountingProxy } from '../helpers/counting-proxy.ts';
import { pushImage, pushLayout, skopeoCopy, skopeoInspect, skopeoInspectConfig, skopeoInspectRaw } from '../helpers/skopeo.ts';

describe('helpers: reference registry, token server, counting proxy and skopeo', function () {
  this.timeout(60_000);
  let tmp: string;
  let layout: string;
  let image: BuiltImage;
  let dockerImage: BuiltImage;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'ferry-selftest-reg-'));
    layout = path.join(tmp, 'layout');
    image = await buildImage({ layers: [2000, 300_000], seed: 'selftest-registry' });
    dockerImage = await buildImage({ layers: [2000], seed: 'selftest-registry-docker', format: 'docker' });
    await writeOciLayout(layout, image, 'oci');
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await rm(tmp, { recursive: true, force: true });
  });

  async function registry(opts: Parameters<typeof startReferenceRegistry>[0] = {}): Promise<ReferenceRegistry> {
    const r = await startReferenceRegistry(opts);
    cleanups.push(() => r.stop());
    return r;
  }

  it('pushes an OCI image to an open registry, which serves the same manifest bytes and config', async () => {
    const reg = await registry();
    await pushLayout(layout, 'oci', reg.host, 'selftest/app', 'v1');
    const raw = await skopeoInspectRaw(`docker://${reg.host}/selftest/app:v1`);
    assert.deepEqual(raw, image.manifest);
    const info = await skopeoInspect(`docker://${reg.host}/selftest/app:v1`);
    assert.equal(info.Digest, image.manifestDigest);
    assert.deepEqual(info.Layers, image.layers.map((l) => l.digest));
    assert.deepEqual(await skopeoInspectConfig(`docker://${reg.host}/selftest/app:v1`), image.config);
    const res = await fetch(`${reg.url}/v2/selftest/app/blobs/${image.layers[1]?.digest}`);
    assert.equal(res.status, 200);
    assert.equal(Buffer.from(await res.arrayBuffer()).length, image.layers[1]?.size);
  });

  it('keeps a Docker v2s2 manifest as it is, and converts to OCI on request', async () => {
    const reg = await registry();
    await pushImage(dockerImage, reg.host, 'selftest/docker', 'v1');
    assert.deepEqual(await skopeoInspectRaw(`docker://${reg.host}/selftest/docker:v1`), dockerImage.manifest);
    await skopeoCopy(`docker://${reg.host}/selftest/docker:v1`, `docker://${reg.host}/selftest/docker:oci`, { format: 'oci' });
    const converted = JSON.parse((await skopeoInspectRaw(`docker://${reg.host}/selftest/docker:oci`)).toString()) as { mediaType: string };
    assert.equal(converted.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const out = path.join(tmp, 'pulled');
    await skopeoCopy(`docker://${reg.host}/selftest/docker:v1`, `dir:${out}`);
    assert.deepEqual(await readFile(path.join(out, 'manifest.json')), dockerImage.manifest);
  });

  it('pushes a multi-platform index with all its images', async () => {
    const reg = await registry();
    const arm = await buildImage({ layers: [500], seed: 'selftest-registry-arm', platform: { os: 'linux', architecture: 'arm64' } });
    const index = buildIndex([image, arm]);
    await pushImage(index, reg.host, 'selftest/multi', 'v1');
    assert.deepEqual(await skopeoInspectRaw(`docker://${reg.host}/selftest/multi:v1`), index.manifest);
    assert.deepEqual(await skopeoInspectRaw(`docker://${reg.host}/selftest/multi@${arm.manifestDigest}`), arm.manifest);
  });

  it('demands Basic credentials from an htpasswd registry and accepts the right ones', async () => {
    const reg = await registry({ htpasswd: { alice: 's3cret' } });
    const anon = await fetch(`${reg.url}/v2/`);
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic realm="ferry-test"/);
    await assert.rejects(pushLayout(layout, 'oci', reg.host, 'selftest/basic', 'v1'), /unauthorized|authentication required/i);
    await assert.rejects(pushLayout(layout, 'oci', reg.host, 'selftest/basic', 'v1', { destCreds: { username: 'alice', password: 'wrong' } }), /unauthorized|authentication required/i);
    await pushLayout(layout, 'oci', reg.host, 'selftest/basic', 'v1', { destCreds: { username: 'alice', password: 's3cret' } });
    const info = await skopeoInspect(`docker://${reg.host}/selftest/basic:v1`, { creds: { username: 'alice', password: 's3cret' } });
    assert.equal(info.Digest, image.manifestDigest);
  });

  describe('token auth', () => {
    let tokens: TokenServer;
    let reg: ReferenceRegistry;
    before(async () => {
      tokens = await startTokenServer({ users: { bob: 'hunter2' }, anonymousPull: true });
      reg = await startReferenceRegistry({ token: { realm: tokens.realm, issuer: tokens.issuer, certPath: tokens.certPath } });
    });
    after(async () => {
      await reg.stop();
      await tokens.close();
    });

    it('challenges with the token server as realm', async () => {
      const res = await fetch(`${reg.url}/v2/`);
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${tokens.realm}",service="${reg.service}"`);
    });

    it('refuses an anonymous push and accepts one with a token issued for credentials', async () => {
      tokens.reset();
      await assert.rejects(pushLayout(layout, 'oci', reg.host, 'selftest/tok', 'v1'), /unauthorized|authentication required|denied/i);
      assert.ok(tokens.requests.some((r) => r.user === undefined && r.scopes.some((s) => s.endsWith(':pull,push') || s.endsWith(':push,pull'))));
      await assert.rejects(pushLayout(layout, 'oci', reg.host, 'selftest/tok', 'v1', { destCreds: { username: 'bob', password: 'nope' } }), /401|unauthorized|invalid/i);
      tokens.reset();
      await pushLayout(layout, 'oci', reg.host, 'selftest/tok', 'v1', { destCreds: { username: 'bob', password: 'hunter2' } });
      assert.ok(tokens.count >= 1);
      assert.ok(tokens.requests.every((r) => r.user === 'bob' && r.status === 200 && r.service === reg.service));
      // anonymousPull: reading needs a token but no credentials.
      const info = await skopeoInspect(`docker://${reg.host}/selftest/tok:v1`);
      assert.equal(info.Digest, image.manifestDigest);
    });

    it('issues JWTs the registry verifies, with exactly the granted access', async () => {
      await pushLayout(layout, 'oci', reg.host, 'selftest/jwt', 'v1', { destCreds: { username: 'bob', password: 'hunter2' } });
      const res = await fetch(`${tokens.realm}?service=${reg.service}&scope=repository:selftest/jwt:pull`);
      const body = await res.json() as { token: string; access_token: string; expires_in: number; issued_at: string };
      assert.equal(body.token, body.access_token);
      assert.equal(body.expires_in, 300);
      const [h, p] = body.token.split('.');
      const header = JSON.parse(Buffer.from(h ?? '', 'base64url').toString()) as { alg: string; x5c: string[] };
      const claims = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>;
      assert.equal(header.alg, 'ES256');
      assert.equal(header.x5c.length, 1);
      assert.deepEqual(claims.access, [{ type: 'repository', name: 'selftest/jwt', actions: ['pull'] }]);
      assert.equal(claims.aud, reg.service);
      const ok = await fetch(`${reg.url}/v2/selftest/jwt/manifests/v1`, {
        headers: { authorization: `Bearer ${body.token}`, accept: image.mediaType },
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('docker-content-digest'), image.manifestDigest);
      const otherRepo = await fetch(`${reg.url}/v2/selftest/tok/manifests/v1`, { headers: { authorization: `Bearer ${body.token}` } });
      assert.equal(otherRepo.status, 401);
      const expired = tokens.issue(reg.service, [{ type: 'repository', name: 'selftest/jwt', actions: ['pull'] }], { expiresIn: -120 });
      const late = await fetch(`${reg.url}/v2/selftest/jwt/manifests/v1`, { headers: { authorization: `Bearer ${expired}` } });
      assert.equal(late.status, 401);
    });

    it('answers 401 to wrong credentials and grants an OAuth2 password grant with a refresh token', async () => {
      const bad = await fetch(`${tokens.realm}?service=x&scope=repository:a:pull`, { headers: { authorization: `Basic ${Buffer.from('bob:bad').toString('base64')}` } });
      assert.equal(bad.status, 401);
      const form = new URLSearchParams({ grant_type: 'password', username: 'bob', password: 'hunter2', service: reg.service, scope: 'repository:a:pull', access_type: 'offline', client_id: 'test' });
      const res = await fetch(tokens.realm, { method: 'POST', body: form });
      const body = await res.json() as { access_token: string; refresh_token: string };
      assert.ok(body.access_token && body.refresh_token);
      const again = await fetch(tokens.realm, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: reg.service, scope: 'repository:a:pull' }) });
      assert.equal(again.status, 200);
    });
  });

  it('issues RS256 tokens the registry accepts as well', async () => {
    const tokens = await startTokenServer({ alg: 'RS256', users: { ci: 'pw' } });
    cleanups.push(() => tokens.close());
    const reg = await registry({ token: { realm: tokens.realm, issuer: tokens.issuer, certPath: tokens.certPath, service: 'rsa-registry' } });
    await pushLayout(layout, 'oci', reg.host, 'selftest/rsa', 'v1', { destCreds: { username: 'ci', password: 'pw' } });
    const info = await skopeoInspect(`docker://${reg.host}/selftest/rsa:v1`, { creds: { username: 'ci', password: 'pw' } });
    assert.equal(info.Digest, image.manifestDigest);
    assert.ok(tokens.requests.every((r) => r.service === 'rsa-registry'));
    const anonymous = await fetch(`${tokens.realm}?service=rsa-registry&scope=repository:selftest/rsa:pull`);
    const { token } = await anonymous.json() as { token: string };
    const denied = await fetch(`${reg.url}/v2/selftest/rsa/manifests/v1`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(denied.status, 401);
  });

  it('counts requests through the counting proxy, one GET per blob on a cold copy', async () => {
    const reg = await registry();
    await pushLayout(layout, 'oci', reg.host, 'selftest/counted', 'v1');
    const proxy = await startCountingProxy(reg.url);
    cleanups.push(() => proxy.close());
    await skopeoCopy(`docker://${proxy.host}/selftest/counted:v1`, `oci:${path.join(tmp, 'counted')}:v1`);
    const gets = proxy.blobGets();
    assert.deepEqual([...gets.keys()].sort(), [image.configDigest, ...image.layers.map((l) => l.digest)].sort());
    assert.ok([...gets.values()].every((n) => n === 1), JSON.stringify([...gets]));
    const big = proxy.requests.find((r) => r.path.endsWith(image.layers[1]?.digest ?? '-'));
    assert.equal(big?.status, 200);
    assert.equal(big?.bytes, image.layers[1]?.size);
    assert.ok(proxy.count('GET', /\/manifests\/v1$/) >= 1);
  });

  it('lets an intercept hook answer instead of the upstream, and records what it sent', async () => {
    const reg = await registry();
    const proxy = await startCountingProxy(reg.url, {
      intercept: (req, res) => {
        if (!req.url?.includes('/blobs/')) return false;
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('nope');
        return true;
      },
    });
    cleanups.push(() => proxy.close());
    const blob = await fetch(`${proxy.url}/v2/x/blobs/${image.configDigest}`);
    assert.equal(blob.status, 503);
    assert.equal(await blob.text(), 'nope');
    const base = await fetch(`${proxy.url}/v2/`);
    assert.equal(base.status, 200);
    assert.equal(base.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.deepEqual(proxy.requests.map((r) => [r.method, r.path, r.status, r.bytes]), [
      ['GET', `/v2/x/blobs/${image.configDigest}`, 503, 4],
      ['GET', '/v2/', 200, 2],
    ]);
  });

  it('runs in proxy mode, fetching from its remote once and then serving from its own storage', async () => {
    const upstream = await registry({ name: 'registry-upstream' });
    await pushLayout(layout, 'oci', upstream.host, 'library/cached', 'v1');
    const counter = await startCountingProxy(upstream.url);
    cleanups.push(() => counter.close());
    const mirror = await registry({ proxy: { remoteUrl: counter.url }, name: 'registry-mirror' });
    const layer = image.layers[1];
    assert.ok(layer);
    await skopeoCopy(`docker://${mirror.host}/library/cached:v1`, `oci:${path.join(tmp, 'via-mirror-1')}:v1`);
    // distribution 2.8 fetches a missed blob twice (once for the client, once to store it).
    assert.ok((counter.blobGets().get(layer.digest) ?? 0) >= 1);
    const stored = path.join(mirror.dataDir, 'docker/registry/v2/blobs/sha256', layer.digest.slice(7, 9), layer.digest.slice(7), 'data');
    await waitFor(() => existsSync(stored), 10_000, 'the mirror to store the layer');
    await waitFor(() => counter.requests.every((r) => r.status !== 0), 10_000, 'upstream fetches to finish');
    counter.reset();
    await skopeoCopy(`docker://${mirror.host}/library/cached:v1`, `oci:${path.join(tmp, 'via-mirror-2')}:v1`);
    assert.equal(counter.blobGets().get(layer.digest), undefined);
  });
});
