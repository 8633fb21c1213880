import assert from 'node:assert/strict';
import { LocalRegistry } from '../../lib/registry/local.ts';
import { importBundle } from '../../lib/archive/import.ts';
import { BundleError } from '../../lib/archive/bundle.ts';
import { DOCKER_LAYER_UNCOMPRESSED } from '../../lib/archive/plan.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import type { Storage } from '../../lib/storage/storage.ts';
import { legacyTar, ociTar, sha256, syntheticImage, tarBytes, tempStore, writeTemp } from './fixtures.ts';

async function blobCount(store: Storage): Promise<number> {
  let n = 0;
  for await (const _b of store.blobs.list()) n++;
  return n;
}

describe('ferry import', () => {
  let ctx: Awaited<ReturnType<typeof tempStore>>;
  beforeEach(async () => {
    ctx = await tempStore();
  });
  afterEach(async () => {
    await ctx.cleanup();
  });

  it('imports a legacy docker save tarball, manifest.json last, as a schema 2 manifest whose layer digests are the diff IDs', async () => {
    const image = await syntheticImage('legacy');
    const file = await writeTemp(ctx.dir, 'legacy.tar', await legacyTar([{ image, repoTags: ['kolla/centos-binary-nova-api:2.0.2'] }]));
    const result = await importBundle(ctx.store, file);
    assert.deepEqual(result.images.map((i) => `${i.name}:${i.tag}`), ['kolla/centos-binary-nova-api:2.0.2']);
    const got = await new LocalRegistry(ctx.store).getManifest('kolla/centos-binary-nova-api', '2.0.2');
    const m = JSON.parse(got.bytes.toString()) as { mediaType: string; config: { digest: string; size: number }; layers: Array<{ mediaType: string; digest: string; size: number }> };
    assert.equal(m.mediaType, MEDIA.dockerManifest);
    assert.equal(m.config.digest, image.configDigest);
    assert.deepEqual(m.layers.map((l) => l.digest), image.diffIds);
    assert.deepEqual(m.layers.map((l) => l.mediaType), [DOCKER_LAYER_UNCOMPRESSED, DOCKER_LAYER_UNCOMPRESSED]);
    assert.deepEqual(m.layers.map((l) => l.size), image.layers.map((l) => l.length));
    for (const l of image.layers) assert.deepEqual(await ctx.store.blobs.readBytes(sha256(l)), l);
    assert.equal(await ctx.store.repositories.getOrigin('kolla/centos-binary-nova-api'), 'local');
    // Only the image's content went in: no manifest.json, no v1 json or VERSION files.
    assert.equal(await blobCount(ctx.store), 4);
  });

  it('imports a legacy tarball whose metadata comes first, and follows the symlink docker save writes for a duplicate layer', async () => {
    const base = await syntheticImage('dup', 1);
    const layer = base.layers[0] as Buffer;
    const diffIds = [sha256(layer), sha256(layer)];
    const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: diffIds } }));
    const image = { layers: [layer, layer], config, configDigest: sha256(config), diffIds };
    const file = await writeTemp(ctx.dir, 'dup.tar', await legacyTar([{ image, repoTags: ['app:1'], metadataFirst: true, duplicateAsSymlink: true }]));
    const [imported] = (await importBundle(ctx.store, file)).images;
    assert.equal(imported?.name, 'library/app');
    const got = await new LocalRegistry(ctx.store).getManifest('library/app', '1');
    const m = JSON.parse(got.bytes.toString()) as { layers: Array<{ digest: string }> };
    assert.deepEqual(m.layers.map((l) => l.digest), diffIds);
  });

  it('imports a Docker 25 OCI-layout tarball keeping the manifest byte for byte', async () => {
    const image = await syntheticImage('oci');
    const save = await ociTar(image, 'kolla/centos-binary-keystone', '2.0.2');
    const file = await writeTemp(ctx.dir, 'oci.tar', save.tar);
    const result = await importBundle(ctx.store, file);
    assert.deepEqual(result.images.map((i) => [i.name, i.tag, i.digest]), [['kolla/centos-binary-keystone', '2.0.2', save.manifestDigest]]);
    const got = await new LocalRegistry(ctx.store).getManifest('kolla/centos-binary-keystone', '2.0.2');
    assert.deepEqual(got.bytes, save.manifest);
    assert.equal(got.mediaType, MEDIA.ociManifest);
  });

  it('renames by the rewrite rules reversed, and by --as and --prefix', async () => {
    const image = await syntheticImage('names', 1);
    const file = await writeTemp(ctx.dir, 'n.tar', await legacyTar([{ image, repoTags: ['kolla/centos-binary-nova-api:2.0.2'] }]));
    const routing = { upstreams: { hub: { url: 'https://registry-1.docker.io', kind: 'dockerhub' as const, hosts: [] } }, rewrite: [{ match: 'kollaglue/*', local: 'lokolla/*', upstream: 'hub', upstreamName: 'kolla/*' }] };
    assert.deepEqual((await importBundle(ctx.store, file, { routing })).images.map((i) => `${i.name}:${i.tag}`), ['lokolla/centos-binary-nova-api:2.0.2']);
    assert.deepEqual((await importBundle(ctx.store, file, { as: 'x/y:z' })).images.map((i) => `${i.name}:${i.tag}`), ['x/y:z']);
    assert.deepEqual((await importBundle(ctx.store, file, { prefix: 'mine/' })).images.map((i) => `${i.name}:${i.tag}`), ['mine/centos-binary-nova-api:2.0.2']);
    const digests = new Set<string>();
    for (const [n, t] of [['lokolla/centos-binary-nova-api', '2.0.2'], ['x/y', 'z'], ['mine/centos-binary-nova-api', '2.0.2']] as const) {
      digests.add((await new LocalRegistry(ctx.store).getManifest(n, t)).digest);
    }
    assert.equal(digests.size, 1);
  });

  it('refuses a truncated tarball with an error naming the file, and leaves no tag or manifest', async () => {
    const image = await syntheticImage('trunc');
    const whole = await legacyTar([{ image, repoTags: ['t/x:1'], metadataFirst: true }]);
    // Every block boundary (a cut there still parses as a tarball) and a few cuts inside blocks.
    const cuts = [700, Math.floor(whole.length / 2) + 3, whole.length - 1];
    for (let cut = 512; cut < whole.length; cut += 512) cuts.push(cut);
    for (const cut of cuts) {
      const file = await writeTemp(ctx.dir, `cut-${cut}.tar`, whole.subarray(0, cut));
      await assert.rejects(importBundle(ctx.store, file), (e: unknown) => e instanceof BundleError && e.message.startsWith(file));
    }
    assert.deepEqual(await ctx.store.repositories.listRepositories(), []);
  });

  it('refuses a blob whose content does not match the digest its path names', async () => {
    const image = await syntheticImage('corrupt', 1);
    const save = await ociTar(image, 'c/x', '1');
    const bad = Buffer.from(save.tar);
    const at = bad.indexOf(Buffer.from('corrupt layer 0'));
    bad[at] = 'C'.charCodeAt(0);
    const file = await writeTemp(ctx.dir, 'bad.tar', bad);
    await assert.rejects(importBundle(ctx.store, file), /bad\.tar: entry blobs\/sha256\/[a-f0-9]+: content digest/);
    assert.deepEqual(await ctx.store.repositories.listRepositories(), []);
  });

  it('refuses --as for a bundle of several images, before putting anything', async () => {
    const a = await syntheticImage('a', 1);
    const b = await syntheticImage('b', 1);
    const file = await writeTemp(ctx.dir, 'two.tar', await legacyTar([{ image: a, repoTags: ['a:1'] }, { image: b, repoTags: ['b:1'] }]));
    await assert.rejects(importBundle(ctx.store, file, { as: 'one/name' }), /--as names one image but the bundle holds 2/);
    assert.deepEqual(await ctx.store.repositories.listRepositories(), []);
    const result = await importBundle(ctx.store, file);
    assert.deepEqual(result.images.map((i) => i.name).sort(), ['library/a', 'library/b']);
  });

  it('needs --as for an image saved without a name', async () => {
    const image = await syntheticImage('anon', 1);
    const file = await writeTemp(ctx.dir, 'anon.tar', await legacyTar([{ image, repoTags: null }]));
    await assert.rejects(importBundle(ctx.store, file), /give one with --as/);
    assert.equal((await importBundle(ctx.store, file, { as: 'anon/img' })).images[0]?.tag, 'latest');
  });

  it('imports an extracted docker save directory, following its layer symlinks', async () => {
    const { mkdir } = await import('node:fs/promises');
    const { execFileSync } = await import('node:child_process');
    const base = await syntheticImage('dir', 1);
    const layer = base.layers[0] as Buffer;
    const diffIds = [sha256(layer), sha256(layer)];
    const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: diffIds } }));
    const image = { layers: [layer, layer], config, configDigest: sha256(config), diffIds };
    const file = await writeTemp(ctx.dir, 'd.tar', await legacyTar([{ image, repoTags: ['d/x:1'], duplicateAsSymlink: true }]));
    const dir = `${ctx.dir}/extracted`;
    await mkdir(dir);
    execFileSync('tar', ['-xf', file, '-C', dir]);
    const result = await importBundle(ctx.store, dir);
    assert.deepEqual(result.images.map((i) => `${i.name}:${i.tag}`), ['d/x:1']);
    assert.equal(await blobCount(ctx.store), 3);
  });

  it('says what is wrong with a tarball that is not an image bundle', async () => {
    const file = await writeTemp(ctx.dir, 'other.tar', await tarBytes([{ name: 'hello.txt', data: Buffer.from('hi') }]));
    await assert.rejects(importBundle(ctx.store, file), /other\.tar: neither an OCI image layout/);
  });
});
