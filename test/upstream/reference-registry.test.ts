/**
 * The client against the real reference registry (distribution 2.8, Debian's docker-registry):
 * with htpasswd Basic auth, and with token auth from a JWT token server it verifies.
 */
import assert from 'node:assert/strict';
import { upstreamSchema, type UpstreamConfig } from '../../lib/config/schema.ts';
import { digestOf } from '../../lib/oci/digest.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { UpstreamClient } from '../../lib/upstream/client.ts';
import { UpstreamAuthError, UpstreamNotFoundError } from '../../lib/upstream/errors.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTokenServer, type TokenServer } from '../helpers/token-server.ts';
import { bytesOf } from './http-server.ts';
import { toRegistryError } from '../../server/errors.ts';

function client(url: string, cfg: Partial<UpstreamConfig> = {}): UpstreamClient {
  return new UpstreamClient('reference', upstreamSchema.parse({ url, retries: 1, ...cfg }), { retry: { baseMs: 5, maxMs: 20 } });
}

describe('UpstreamClient against the reference registry', function () {
  this.timeout(120_000);
  let oci: BuiltImage;
  let docker: BuiltImage;

  before(async () => {
    [oci, docker] = await Promise.all([
      buildImage({ layers: [2000, 300_000], seed: 'upstream-client-oci' }),
      buildImage({ layers: [5000], seed: 'upstream-client-docker', format: 'docker' }),
    ]);
  });

  describe('with htpasswd Basic auth', () => {
    const users = { alice: 'wonderland' };
    const creds = { username: 'alice', password: 'wonderland' };
    let registry: ReferenceRegistry;
    let c: UpstreamClient;

    before(async () => {
      registry = await startReferenceRegistry({ htpasswd: users });
      await pushImage(oci, registry.host, 'team/app', 'v1', { destCreds: creds });
      await pushImage(oci, registry.host, 'team/app', 'v2', { destCreds: creds });
      await pushImage(docker, registry.host, 'team/legacy', 'v1', { destCreds: creds });
      c = client(registry.url, creds);
    });
    after(async () => {
      await c?.close();
      await registry?.stop();
    });

    it('pings with the credentials', async () => {
      await c.ping();
    });

    it('refuses to ping without credentials: UpstreamAuthError, DENIED at the boundary', async () => {
      const anon = client(registry.url);
      const err = await anon.ping().catch((e: unknown) => e);
      assert.ok(err instanceof UpstreamAuthError, String(err));
      assert.equal(toRegistryError(err).code, 'DENIED');
      await anon.close();
    });

    it('fails with UpstreamAuthError on a wrong password', async () => {
      const wrong = client(registry.url, { username: 'alice', password: 'nope' });
      await assert.rejects(wrong.getManifest('team/app', 'v1'), UpstreamAuthError);
      await wrong.close();
    });

    it('gets an OCI manifest by tag and by digest, byte for byte', async () => {
      const byTag = await c.getManifest('team/app', 'v1');
      assert.deepEqual(byTag, { bytes: oci.manifest, mediaType: MEDIA.ociManifest, digest: oci.manifestDigest });
      const byDigest = await c.getManifest('team/app', oci.manifestDigest);
      assert.deepEqual(byDigest.bytes, oci.manifest);
    });

    it('gets a Docker v2 schema 2 manifest with its media type', async () => {
      const m = await c.getManifest('team/legacy', 'v1');
      assert.equal(m.mediaType, MEDIA.dockerManifest);
      assert.equal(m.digest, docker.manifestDigest);
    });

    it('revalidates a tag with HEAD, and answers undefined for a tag that does not exist', async () => {
      assert.deepEqual(await c.headManifest('team/app', 'v2'), { digest: oci.manifestDigest, mediaType: MEDIA.ociManifest, size: oci.manifest.length });
      assert.equal(await c.headManifest('team/app', 'nope'), undefined);
    });

    it('answers UpstreamNotFoundError (MANIFEST_UNKNOWN) for a missing tag', async () => {
      const err = await c.getManifest('team/app', 'nope').catch((e: unknown) => e);
      assert.ok(err instanceof UpstreamNotFoundError, String(err));
      assert.equal(toRegistryError(err).code, 'MANIFEST_UNKNOWN');
    });

    it('heads, gets and ranges a blob', async () => {
      const layer = oci.layers[1];
      assert.ok(layer?.bytes);
      assert.deepEqual(await c.headBlob('team/app', layer.digest), { size: layer.size, acceptRanges: true });
      const whole = await c.getBlob('team/app', layer.digest);
      assert.equal(whole.status, 200);
      assert.equal(whole.size, layer.size);
      assert.equal(digestOf(await bytesOf(whole.body)), layer.digest);
      const part = await c.getBlob('team/app', layer.digest, { start: 1000, end: 65_535 });
      assert.equal(part.status, 206);
      assert.equal(part.size, layer.size);
      assert.deepEqual(await bytesOf(part.body), layer.bytes.subarray(1000, 65_536));
      assert.equal(await c.headBlob('team/app', digestOf('not there')), undefined);
    });

    it('serves the transfer engine ranges through rangeSource', async () => {
      const layer = oci.layers[1];
      assert.ok(layer?.bytes);
      const source = c.rangeSource('team/app', layer.digest);
      const ac = new AbortController();
      const res = await source.fetchRange(layer.size - 100, layer.size - 1, ac.signal);
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes ${layer.size - 100}-${layer.size - 1}/${layer.size}`);
      assert.deepEqual(await bytesOf(res.body), layer.bytes.subarray(layer.size - 100));
      const missing = await c.rangeSource('team/app', digestOf('absent')).fetchRange(0, 9, ac.signal);
      assert.equal(missing.status, 404);
      await bytesOf(missing.body);
    });

    it('lists the tags of a repository, and NAME_UNKNOWN for one that does not exist', async () => {
      assert.deepEqual((await c.listTags('team/app')).sort(), ['v1', 'v2']);
      const err = await c.listTags('team/nothing').catch((e: unknown) => e);
      assert.ok(err instanceof UpstreamNotFoundError, String(err));
      assert.equal(toRegistryError(err).code, 'NAME_UNKNOWN');
    });
  });

  describe('with token auth', () => {
    let tokens: TokenServer;
    let registry: ReferenceRegistry;
    const creds = { username: 'bob', password: 'builder' };

    before(async () => {
      tokens = await startTokenServer({ users: { bob: 'builder' } });
      registry = await startReferenceRegistry({ token: { realm: tokens.realm, issuer: tokens.issuer, certPath: tokens.certPath } });
      await pushImage(oci, registry.host, 'team/app', 'v1', { destCreds: creds });
      await pushImage(docker, registry.host, 'team/legacy', 'v1', { destCreds: creds });
    });
    after(async () => {
      await registry?.stop();
      await tokens?.close();
    });

    it('fetches one token per repository scope and reuses it for every request', async () => {
      tokens.reset();
      const c = client(registry.url, creds);
      await c.ping();
      const m = await c.getManifest('team/app', 'v1');
      assert.equal(m.digest, oci.manifestDigest);
      await c.headManifest('team/app', 'v1');
      const layer = oci.layers[0];
      assert.ok(layer);
      const blob = await c.getBlob('team/app', layer.digest);
      assert.equal(digestOf(await bytesOf(blob.body)), layer.digest);
      assert.deepEqual(await c.listTags('team/app'), ['v1']);
      await c.getManifest('team/legacy', 'v1');
      assert.deepEqual(tokens.requests.map((r) => [r.user, r.scopes]), [
        ['bob', []],
        ['bob', ['repository:team/app:pull']],
        ['bob', ['repository:team/legacy:pull']],
      ]);
      assert.equal(tokens.requests[1]?.service, registry.service);
      await c.close();
    });

    it('shares one token among concurrent range requests', async () => {
      tokens.reset();
      const c = client(registry.url, creds);
      const layer = oci.layers[1];
      assert.ok(layer?.bytes);
      const source = c.rangeSource('team/app', layer.digest);
      const ac = new AbortController();
      const step = 50_000;
      const parts = await Promise.all(Array.from({ length: Math.ceil(layer.size / step) }, async (_, i) => {
        const res = await source.fetchRange(i * step, Math.min(layer.size, (i + 1) * step) - 1, ac.signal);
        assert.equal(res.status, 206);
        return bytesOf(res.body);
      }));
      assert.deepEqual(Buffer.concat(parts), layer.bytes);
      assert.equal(tokens.count, 1);
      await c.close();
    });

    it('reports a repository the credentials do not reach as an auth failure of insufficient scope', async () => {
      const anon = client(registry.url);
      const err = await anon.getManifest('team/app', 'v1').catch((e: unknown) => e);
      assert.ok(err instanceof UpstreamAuthError, String(err));
      assert.equal(err.insufficientScope, true);
      assert.equal(toRegistryError(err).status, 403);
      await anon.close();
    });

    it('fails with UpstreamAuthError when the token server refuses the password', async () => {
      const wrong = client(registry.url, { username: 'bob', password: 'nope' });
      await assert.rejects(wrong.getManifest('team/app', 'v1'), /token endpoint refused/);
      await wrong.close();
    });
  });
});
