/**
 * Pull-through from upstreams that need credentials: htpasswd Basic auth, and token auth with a
 * token server issuing JWTs the reference registry verifies. Clients talk to ferry without any
 * credentials; ferry authenticates upstream, under a rewrite kollaglue/* -> kolla/*.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ConfigInput } from '../../lib/config/schema.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage, skopeoCopy } from '../helpers/skopeo.ts';
import { startTokenServer, type TokenServer } from '../helpers/token-server.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';
import { Teardown, dockerPull, errorCodes } from './pull-through-fixture.ts';

const USER = { username: 'ferry', password: 'upstream-secret' };

function rewriteTo(upstreamUrl: string, creds: { username: string; password: string }): Omit<ConfigInput, 'listen'> {
  return {
    upstreams: { private: { url: upstreamUrl, ...creds, retries: 1 } },
    rewrite: [{ match: 'kollaglue/*', upstream: 'private', upstreamName: 'kolla/*' }],
  };
}

describe('pull-through: upstreams that need credentials', function () {
  this.timeout(120_000);
  const outer = new Teardown();
  let dockerd: Dockerd;
  let tmp: string;

  before(async () => {
    tmp = outer.add(await mkdtemp(path.join(os.tmpdir(), 'ferry-e2e-auth-')), (d) => rm(d, { recursive: true, force: true }));
    dockerd = outer.add(await startDockerd({ name: 'dockerd-auth' }), (d) => d.stop());
  });
  after(() => outer.run());

  /** skopeo copies kollaglue/NAME from ferry to a dir: and returns the manifest it wrote. */
  async function skopeoPull(ferry: TestMirror, name: string, tag: string): Promise<Buffer> {
    const dest = path.join(tmp, `${name}-${tag}-${Date.now()}`);
    await skopeoCopy(`docker://${ferry.host}/kollaglue/${name}:${tag}`, `dir:${dest}`);
    return readFile(path.join(dest, 'manifest.json'));
  }

  /**
   * Pushes kolla/keystone (for skopeo) and kolla/nova-api (for dockerd), seeded by `kind` so no
   * layer is one dockerd already holds from another block (it would not ask for it again).
   */
  async function pushImages(registry: ReferenceRegistry, kind: string): Promise<{ skopeoImage: BuiltImage; dockerImage: BuiltImage }> {
    const [skopeoImage, dockerImage] = await Promise.all([
      buildImage({ layers: [400_000, 30_000], seed: `e2e-auth-${kind}-skopeo` }),
      buildImage({ layers: [300_000], seed: `e2e-auth-${kind}-docker`, format: 'docker', runnable: { message: `pulled through ${kind} auth` } }),
    ]);
    await pushImage(skopeoImage, registry.host, 'kolla/keystone', 'zed', { destCreds: USER });
    await pushImage(dockerImage, registry.host, 'kolla/nova-api', 'zed', { destCreds: USER });
    return { skopeoImage, dockerImage };
  }

  interface Pulled {
    ferry: TestMirror;
    skopeoImage: BuiltImage;
    dockerImage: BuiltImage;
  }

  /** The pulls every kind of auth must allow: skopeo, then dockerd with a run. */
  function itPullsThrough(kind: string, ctx: () => Pulled): void {
    it('lets skopeo pull kollaglue/NAME from upstream kolla/NAME, manifest byte for byte', async () => {
      const { ferry, skopeoImage } = ctx();
      assert.deepEqual(await skopeoPull(ferry, 'keystone', 'zed'), skopeoImage.manifest);
    });

    it('lets dockerd pull and run kollaglue/NAME from upstream kolla/NAME', async () => {
      const { ferry, dockerImage } = ctx();
      const ref = `${ferry.host}/kollaglue/nova-api:zed`;
      assert.equal(await dockerPull(dockerd, ref), dockerImage.manifestDigest);
      assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), `pulled through ${kind} auth\n`);
    });
  }

  describe('Basic auth (htpasswd)', () => {
    const teardown = new Teardown();
    let registry: ReferenceRegistry;
    let ferry: TestMirror;
    let skopeoImage: BuiltImage;
    let dockerImage: BuiltImage;

    before(async () => {
      registry = teardown.add(await startReferenceRegistry({ name: 'registry-basic', htpasswd: { [USER.username]: USER.password } }), (r) => r.stop());
      ({ skopeoImage, dockerImage } = await pushImages(registry, 'basic'));
      ferry = teardown.add(await startTestMirror(rewriteTo(registry.url, USER)), (m) => m.stop());
    });
    after(() => teardown.run());

    itPullsThrough('basic', () => ({ ferry, skopeoImage, dockerImage }));

    it('answers DENIED, not 401, when the upstream refuses the configured password', async () => {
      const wrong = await startTestMirror(rewriteTo(registry.url, { username: USER.username, password: 'wrong' }));
      try {
        const res = await fetch(`${wrong.url}/v2/kollaglue/keystone/manifests/zed`);
        assert.equal(res.status, 403);
        assert.deepEqual(errorCodes(await res.text()), ['DENIED']);
      } finally {
        await wrong.stop();
      }
    });
  });

  describe('token auth (JWTs from a token server)', () => {
    const teardown = new Teardown();
    let tokens: TokenServer;
    let proxy: CountingProxy;
    let ferry: TestMirror;
    let skopeoImage: BuiltImage;
    let dockerImage: BuiltImage;

    before(async () => {
      tokens = teardown.add(await startTokenServer({ users: { [USER.username]: USER.password }, anonymousPull: false }), (t) => t.close());
      const registry = teardown.add(await startReferenceRegistry({
        name: 'registry-token',
        token: { realm: tokens.realm, issuer: tokens.issuer, certPath: tokens.certPath },
      }), (r) => r.stop());
      ({ skopeoImage, dockerImage } = await pushImages(registry, 'token'));
      // Counts what ferry asks the registry, to compare with what it asks the token server.
      proxy = teardown.add(await startCountingProxy(registry.url), (p) => p.close());
      ferry = teardown.add(await startTestMirror(rewriteTo(proxy.url, USER)), (m) => m.stop());
      tokens.reset();
    });
    after(() => teardown.run());

    itPullsThrough('token', () => ({ ferry, skopeoImage, dockerImage }));

    it('asked the token server once per scope, as the configured user, for many upstream requests', () => {
      const byScope = new Map<string, number>();
      for (const r of tokens.requests) {
        assert.equal(r.status, 200);
        assert.equal(r.user, USER.username);
        for (const s of r.scopes) byScope.set(s, (byScope.get(s) ?? 0) + 1);
      }
      assert.deepEqual(Object.fromEntries(byScope), { 'repository:kolla/keystone:pull': 1, 'repository:kolla/nova-api:pull': 1 });
      assert.equal(tokens.count, 2);
      // Manifest, config and layers of both images: a GET each (no HEAD for a blob: its manifest gave the size).
      const served = proxy.requests.filter((r) => r.status === 200 || r.status === 206);
      assert.ok(served.length >= 2 + 2 * (1 + 2), `only ${served.length} upstream requests succeeded`);
      assert.deepEqual(proxy.requests.filter((r) => r.method === 'HEAD' && r.path.includes('/blobs/')), [], 'no blob HEAD');
    });

    it('serves a second pull from its cache, asking neither the registry nor the token server', async () => {
      const before = { tokens: tokens.count, upstream: proxy.requests.length };
      await skopeoPull(ferry, 'nova-api', 'zed');
      assert.equal(tokens.count, before.tokens);
      assert.equal(proxy.requests.length, before.upstream);
    });
  });
});
