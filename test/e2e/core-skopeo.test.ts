/**
 * ferry as a plain local registry (no upstream) driven by skopeo: pushes and pulls in OCI and
 * Docker v2s2, from an OCI layout and from a dir:, whole multi-platform indexes, inspect,
 * cross-repository mounts, delete and tag lists.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { buildImage, buildIndex, writeOciLayout, type BuiltImage, type BuiltIndex } from '../helpers/oci-image.ts';
import { pushImage, skopeoCopy, skopeoInspect, skopeoInspectRaw } from '../helpers/skopeo.ts';
import { Teardown, errorCodes } from './pull-through-fixture.ts';
import {
  fetchManifest, mountsDone, pullAndVerify, skopeoDelete, skopeoListTags, skopeoRaw, startCoreMirror, uploadRequests, type CoreMirror,
} from './core-fixture.ts';

const layerDigests = (image: BuiltImage): string[] => image.layers.map((l) => l.digest);
const manifestLayers = (bytes: Buffer): string[] => (JSON.parse(bytes.toString('utf8')) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);

describe('core: skopeo against ferry as a local registry', function () {
  this.timeout(60_000);
  const teardown = new Teardown();
  let ferry: CoreMirror;
  let scratch: string;
  let ociImage: BuiltImage;
  let dockerImage: BuiltImage;
  let ociIndex: BuiltIndex;
  let dockerList: BuiltIndex;

  before(async () => {
    scratch = teardown.add(await mkdtemp(join(tmpdir(), 'ferry-core-skopeo-')), (d) => rm(d, { recursive: true, force: true }));
    const platformImages = (format: 'oci' | 'docker'): Promise<BuiltImage[]> => Promise.all([
      buildImage({ layers: [60_000], layerSeeds: ['core-shared-base'], seed: `core-multi-${format}-amd64`, format }),
      buildImage({ layers: [60_000, 20_000], layerSeeds: ['core-shared-base', `core-multi-${format}-arm64`], seed: `core-multi-${format}-arm64`, format, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
    ]);
    let ociChildren: BuiltImage[];
    let dockerChildren: BuiltImage[];
    [ociImage, dockerImage, ociChildren, dockerChildren] = await Promise.all([
      buildImage({ layers: [200_000, 30_000], seed: 'core-oci' }),
      buildImage({ layers: [150_000], seed: 'core-v2s2', format: 'docker' }),
      platformImages('oci'),
      platformImages('docker'),
    ]);
    ociIndex = buildIndex(ociChildren);
    dockerList = buildIndex(dockerChildren);
    ferry = teardown.add(await startCoreMirror(), (m) => m.stop());
  });
  after(() => teardown.run());

  describe('OCI image from an OCI layout', () => {
    let layout: string;
    before(async () => {
      layout = join(scratch, 'oci-layout');
      await writeOciLayout(layout, ociImage, 'v1');
    });

    it('keeps the manifest byte for byte when pushed with --format oci, and pulls back verified', async () => {
      await skopeoCopy(`oci:${layout}:v1`, `docker://${ferry.host}/core/app:oci`, { format: 'oci' });
      const served = await fetchManifest(ferry.url, 'core/app', 'oci');
      assert.equal(served.status, 200);
      assert.equal(served.digest, ociImage.manifestDigest);
      assert.equal(served.contentType, MEDIA.ociManifest);
      assert.deepEqual(served.bytes, ociImage.manifest);
      const pulled = await pullAndVerify(`${ferry.host}/core/app:oci`);
      assert.deepEqual(pulled.manifest, ociImage.manifest);
      assert.deepEqual(pulled.verified, [ociImage.configDigest, ...layerDigests(ociImage)]);
    });

    it('stores the Docker v2s2 conversion when pushed with --format v2s2, over the same layer blobs', async () => {
      await skopeoCopy(`oci:${layout}:v1`, `docker://${ferry.host}/core/app:oci-as-v2s2`, { format: 'v2s2' });
      const served = await fetchManifest(ferry.url, 'core/app', 'oci-as-v2s2');
      assert.equal(served.status, 200);
      assert.equal(served.contentType, MEDIA.dockerManifest);
      assert.notEqual(served.digest, ociImage.manifestDigest);
      assert.deepEqual(manifestLayers(served.bytes), layerDigests(ociImage));
      const pulled = await pullAndVerify(`${ferry.host}/core/app:oci-as-v2s2`);
      assert.deepEqual(pulled.manifest, served.bytes);
      assert.equal(pulled.mediaType, MEDIA.dockerManifest);
    });
  });

  describe('Docker v2s2 image from a dir:', () => {
    it('keeps the manifest byte for byte when pushed with --format v2s2, and pulls back verified', async () => {
      await pushImage(dockerImage, ferry.host, 'core/app', 'v2s2', { format: 'v2s2' });
      const served = await fetchManifest(ferry.url, 'core/app', 'v2s2');
      assert.equal(served.digest, dockerImage.manifestDigest);
      assert.equal(served.contentType, MEDIA.dockerManifest);
      assert.deepEqual(served.bytes, dockerImage.manifest);
      const pulled = await pullAndVerify(`${ferry.host}/core/app:v2s2`);
      assert.deepEqual(pulled.manifest, dockerImage.manifest);
      assert.deepEqual(pulled.verified, [dockerImage.configDigest, ...layerDigests(dockerImage)]);
    });

    it('stores the OCI conversion when pushed with --format oci', async () => {
      await pushImage(dockerImage, ferry.host, 'core/app', 'v2s2-as-oci', { format: 'oci' });
      const served = await fetchManifest(ferry.url, 'core/app', 'v2s2-as-oci');
      assert.equal(served.contentType, MEDIA.ociManifest);
      assert.notEqual(served.digest, dockerImage.manifestDigest);
      assert.deepEqual(manifestLayers(served.bytes), layerDigests(dockerImage));
      const pulled = await pullAndVerify(`${ferry.host}/core/app:v2s2-as-oci`);
      assert.deepEqual(pulled.manifest, served.bytes);
      assert.equal(pulled.mediaType, MEDIA.ociManifest);
    });

    it('pulls a Docker v2s2 image into an OCI layout', async () => {
      const dest = join(scratch, 'pulled-oci-layout');
      await skopeoCopy(`docker://${ferry.host}/core/app:v2s2`, `oci:${dest}:pulled`, { format: 'oci' });
      const index = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; mediaType: string }> };
      const [entry] = index.manifests;
      assert.equal(entry?.mediaType, MEDIA.ociManifest);
      const manifest = await readFile(join(dest, 'blobs', ...(entry?.digest ?? '').split(':')));
      assert.deepEqual(manifestLayers(manifest), layerDigests(dockerImage));
    });
  });

  describe('multi-platform indexes', () => {
    it('pushes an OCI index from an OCI layout with --all and pulls it whole', async () => {
      const layout = join(scratch, 'index-layout');
      await writeOciLayout(layout, ociIndex, 'multi');
      await skopeoCopy(`oci:${layout}:multi`, `docker://${ferry.host}/core/multi:oci`, { all: true });
      const served = await fetchManifest(ferry.url, 'core/multi', 'oci');
      assert.equal(served.digest, ociIndex.manifestDigest);
      assert.equal(served.contentType, MEDIA.ociIndex);
      assert.deepEqual(served.bytes, ociIndex.manifest);
      for (const child of ociIndex.images) {
        const c = await fetchManifest(ferry.url, 'core/multi', child.manifestDigest);
        assert.deepEqual(c.bytes, child.manifest);
      }
      const pulled = await pullAndVerify(`${ferry.host}/core/multi:oci`, { all: true });
      assert.deepEqual(pulled.manifest, ociIndex.manifest);
      const expected = new Set(ociIndex.images.flatMap((i) => [i.manifestDigest, i.configDigest, ...layerDigests(i)]));
      assert.deepEqual(new Set(pulled.verified), expected);
    });

    it('pushes a Docker manifest list from a dir: with --all and pulls it whole', async () => {
      await pushImage(dockerList, ferry.host, 'core/multi', 'v2s2', { all: true });
      assert.deepEqual((await fetchManifest(ferry.url, 'core/multi', 'v2s2')).bytes, dockerList.manifest);
      const pulled = await pullAndVerify(`${ferry.host}/core/multi:v2s2`, { all: true });
      assert.deepEqual(pulled.manifest, dockerList.manifest);
      assert.equal(pulled.mediaType, MEDIA.dockerManifestList);
      assert.deepEqual(new Set(pulled.verified), new Set(dockerList.images.flatMap((i) => [i.manifestDigest, i.configDigest, ...layerDigests(i)])));
    });

    it('gives a pull without --all the image of the local platform', async () => {
      const pulled = await pullAndVerify(`${ferry.host}/core/multi:oci`);
      const arch = process.arch === 'x64' ? 'amd64' : process.arch;
      const local = ociIndex.images.find((i) => i.platform.architecture === arch);
      assert.ok(local, `no image for ${arch} in the index`);
      assert.deepEqual(pulled.manifest, local.manifest);
    });
  });

  describe('inspect', () => {
    it('reports the digest ferry sends as Docker-Content-Digest, and --raw gives the pushed bytes', async () => {
      for (const [tag, image] of [['oci', ociImage], ['v2s2', dockerImage]] as const) {
        const head = await fetch(`${ferry.url}/v2/core/app/manifests/${tag}`, { method: 'HEAD', headers: { accept: `${MEDIA.ociManifest}, ${MEDIA.dockerManifest}` } });
        assert.equal(head.status, 200);
        const info = await skopeoInspect(`docker://${ferry.host}/core/app:${tag}`);
        assert.equal(info.Digest, head.headers.get('docker-content-digest'));
        assert.equal(info.Digest, image.manifestDigest);
        assert.deepEqual(info.Layers, layerDigests(image));
        assert.deepEqual([...info.RepoTags].sort(), ['oci', 'oci-as-v2s2', 'v2s2', 'v2s2-as-oci']);
        assert.deepEqual(await skopeoInspectRaw(`docker://${ferry.host}/core/app:${tag}`), image.manifest);
      }
      assert.deepEqual(await skopeoInspectRaw(`docker://${ferry.host}/core/multi:oci`), ociIndex.manifest);
    });
  });

  describe('copy between two repositories of ferry', () => {
    it('mounts the layers from the source repository instead of uploading them', async () => {
      const mark = ferry.log.mark();
      await skopeoCopy(`docker://${ferry.host}/core/app:oci`, `docker://${ferry.host}/core/copy:oci`);
      const requests = ferry.log.since(mark);
      const mounted = mountsDone(requests).map((r) => new URL(r.path, ferry.url).searchParams.get('mount'));
      for (const digest of layerDigests(ociImage)) assert.ok(mounted.includes(digest), `layer ${digest} not mounted: ${JSON.stringify(requests)}`);
      const uploaded = uploadRequests(requests).filter((r) => layerDigests(ociImage).some((d) => r.path.includes(d)));
      assert.deepEqual(uploaded, []);
      assert.equal((await fetchManifest(ferry.url, 'core/copy', 'oci')).digest, ociImage.manifestDigest);
      const pulled = await pullAndVerify(`${ferry.host}/core/copy:oci`);
      assert.deepEqual(pulled.manifest, ociImage.manifest);
    });
  });

  describe('delete and tag lists', () => {
    it('deletes a manifest by digest, after which inspect fails with manifest unknown', async () => {
      await pushImage(dockerImage, ferry.host, 'core/doomed', 'v1');
      await pushImage(ociImage, ferry.host, 'core/doomed', 'kept');
      const mark = ferry.log.mark();
      await skopeoDelete(`docker://${ferry.host}/core/doomed@${dockerImage.manifestDigest}`);
      assert.deepEqual(ferry.log.since(mark).filter((r) => r.method === 'DELETE').map((r) => [r.path, r.status]), [[`/v2/core/doomed/manifests/${dockerImage.manifestDigest}`, 202]]);
      for (const ref of [`core/doomed@${dockerImage.manifestDigest}`, 'core/doomed:v1']) {
        const res = await skopeoRaw(['inspect', '--tls-verify=false', `docker://${ferry.host}/${ref}`]);
        assert.notEqual(res.code, 0, ref);
        assert.match(res.stderr, /manifest unknown/i, ref);
      }
      assert.equal((await skopeoInspect(`docker://${ferry.host}/core/doomed:kept`)).Digest, ociImage.manifestDigest);
      assert.deepEqual(await skopeoListTags(`docker://${ferry.host}/core/doomed`), ['kept']);
    });

    it('lists the tags of a repository', async () => {
      assert.deepEqual((await skopeoListTags(`docker://${ferry.host}/core/app`)).sort(), ['oci', 'oci-as-v2s2', 'v2s2', 'v2s2-as-oci']);
      assert.deepEqual((await skopeoListTags(`docker://${ferry.host}/core/multi`)).sort(), ['oci', 'v2s2']);
    });

    it('fails list-tags of a repository nothing was pushed to', async () => {
      const res = await skopeoRaw(['list-tags', '--tls-verify=false', `docker://${ferry.host}/core/never`]);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /404/);
      const http = await fetch(`${ferry.url}/v2/core/never/tags/list`);
      assert.equal(http.status, 404);
      assert.deepEqual(errorCodes(await http.text()), ['NAME_UNKNOWN']);
    });
  });
});
