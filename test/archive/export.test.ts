import assert from 'node:assert/strict';
import { readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tar from 'tar-stream';
import { createReadStream } from 'node:fs';
import { exportDockerTar, exportOciDir } from '../../lib/archive/export.ts';
import { importBundle } from '../../lib/archive/import.ts';
import { selectImages } from '../../lib/archive/select.ts';
import { parseSinceText, readSince } from '../../lib/archive/since.ts';
import { openStore, type FsStorage } from '../../lib/storage/store.ts';
import { hex, putImage, sha256, syntheticImage, tempStore, type SyntheticImage } from './fixtures.ts';

async function storeSnapshot(store: FsStorage): Promise<{ tags: Record<string, string>; blobs: string[] }> {
  const tags: Record<string, string> = {};
  for (const repo of await store.repositories.listRepositories()) {
    for (const tag of await store.repositories.listTags(repo)) tags[`${repo}:${tag}`] = (await store.repositories.getTag(repo, tag)) as string;
  }
  const blobs: string[] = [];
  for await (const b of store.blobs.list()) blobs.push(`${b.digest}/${b.size}`);
  return { tags, blobs: blobs.sort() };
}

async function tarEntries(file: string): Promise<string[]> {
  const names: string[] = [];
  const extract = tar.extract();
  createReadStream(file).pipe(extract as unknown as NodeJS.WritableStream);
  for await (const entry of extract) {
    names.push(entry.header.name);
    entry.resume();
  }
  return names;
}

describe('ferry export', () => {
  let src: Awaited<ReturnType<typeof tempStore>>;
  let a: SyntheticImage;
  let b: SyntheticImage;
  beforeEach(async () => {
    src = await tempStore();
    a = await syntheticImage('export-a', 2);
    b = await syntheticImage('export-b', 3);
    await putImage(src.store, 'lokolla/nova-api', '2.0.2', a);
    await putImage(src.store, 'lokolla/keystone', '2.0.2', b);
    await putImage(src.store, 'cached/thing', '1', await syntheticImage('cached', 1), 'cache');
  });
  afterEach(async () => {
    await src.cleanup();
  });

  it('selects every tag of every local repository by default, and cached ones only when asked', async () => {
    assert.deepEqual((await selectImages(src.store, [])).map((i) => `${i.name}:${i.tag}`), ['lokolla/keystone:2.0.2', 'lokolla/nova-api:2.0.2']);
    assert.equal((await selectImages(src.store, [], { includeCache: true })).length, 3);
    await assert.rejects(selectImages(src.store, ['lokolla/nova-api:nope']), /no such tag/);
  });

  it('exports an OCI layout directory that imports into a fresh store with identical manifests and blobs', async () => {
    const dir = path.join(src.dir, 'bundle');
    const images = await selectImages(src.store, []);
    const r = await exportOciDir(src.store, images, dir);
    assert.equal(r.blobsWritten, 2 + 3 + 2 + 2); // layers, two configs, two manifests
    assert.deepEqual(JSON.parse(await readFile(path.join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const dst = await openStore(path.join(src.dir, 'other'));
    for (const res of [await importBundle(dst, dir)]) assert.equal(res.images.length, 2);
    const before = await storeSnapshot(src.store);
    const after = await storeSnapshot(dst);
    delete before.tags['cached/thing:1'];
    assert.deepEqual(after.tags, before.tags);
    const cachedOnly = new Set((await storeSnapshot(src.store)).blobs);
    for (const x of after.blobs) assert.ok(cachedOnly.has(x));
    assert.equal(after.blobs.length, 9);
  });

  it('resumes an OCI directory export: keeps blobs present at the right size, rewrites a short one', async () => {
    const dir = path.join(src.dir, 'bundle');
    const images = await selectImages(src.store, ['lokolla/keystone']);
    await exportOciDir(src.store, images, dir);
    const layer = path.join(dir, 'blobs/sha256', hex(sha256(b.layers[1] as Buffer)));
    await truncate(layer, 10);
    const again = await exportOciDir(src.store, images, dir);
    assert.deepEqual([again.blobsWritten, again.blobsPresent], [1, 4]); // 3 layers, config, manifest
    assert.equal((await stat(layer)).size, (b.layers[1] as Buffer).length);
    assert.deepEqual((await readdir(path.join(dir, 'blobs/sha256'))).filter((n) => n.startsWith('.')), []);
  });

  it('adds to the index.json of a directory exported before', async () => {
    const dir = path.join(src.dir, 'bundle');
    await exportOciDir(src.store, await selectImages(src.store, ['lokolla/keystone:2.0.2']), dir);
    await exportOciDir(src.store, await selectImages(src.store, ['lokolla/nova-api:2.0.2']), dir);
    const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
    assert.deepEqual(index.manifests.map((m) => m.annotations['io.containerd.image.name']), ['lokolla/keystone:2.0.2', 'lokolla/nova-api:2.0.2']);
  });

  it('exports a docker-tar that docker load can read (manifest.json into blobs/) and that imports identically', async () => {
    const file = path.join(src.dir, 'bundle.tar');
    const images = await selectImages(src.store, []);
    const r = await exportDockerTar(src.store, images, file);
    assert.equal(r.blobsWritten, 9);
    const names = await tarEntries(file);
    assert.deepEqual(names.slice(0, 4), ['oci-layout', 'index.json', 'manifest.json', 'repositories']);
    const dst = await openStore(path.join(src.dir, 'other'));
    await importBundle(dst, file);
    const before = await storeSnapshot(src.store);
    delete before.tags['cached/thing:1'];
    assert.deepEqual((await storeSnapshot(dst)).tags, before.tags);
    // The legacy view docker load reads: config and layers by path, with the image's tags.
    const m = JSON.parse(await readEntry(file, 'manifest.json')) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    const nova = m.find((e) => e.RepoTags.includes('lokolla/nova-api:2.0.2'));
    assert.equal(nova?.Config, `blobs/sha256/${hex(a.configDigest)}`);
    assert.deepEqual(nova?.Layers, a.layers.map((l) => `blobs/sha256/${hex(sha256(l))}`));
  });

  it('leaves out of the bundle what --since says the other side has, and the other side imports it', async () => {
    const first = path.join(src.dir, 'first');
    await exportOciDir(src.store, await selectImages(src.store, ['lokolla/keystone:2.0.2']), first);
    const other = await openStore(path.join(src.dir, 'other'));
    await importBundle(other, first);
    // nova-api v2 shares a layer with keystone (a base layer): only the rest travels.
    const c: SyntheticImage = { ...a, layers: [b.layers[0] as Buffer, a.layers[1] as Buffer] };
    c.diffIds = c.layers.map(sha256);
    c.config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: c.diffIds } }));
    c.configDigest = sha256(c.config);
    await putImage(src.store, 'lokolla/nova-api', '2.0.3', c);
    const since = await readSince(src.store, path.join(first, 'index.json'));
    for (const format of ['oci-dir', 'docker-tar'] as const) {
      const out = path.join(src.dir, `delta-${format}`);
      const images = await selectImages(src.store, ['lokolla/nova-api:2.0.3']);
      const r = format === 'oci-dir' ? await exportOciDir(src.store, images, out, { since }) : await exportDockerTar(src.store, images, out, { since });
      assert.deepEqual([r.blobsWritten, r.blobsOmitted], [3, 1], format);
      const res = await importBundle(other, out);
      assert.equal(res.images[0]?.digest, await src.store.repositories.getTag('lokolla/nova-api', '2.0.3'));
      const empty = await openStore(path.join(src.dir, `empty-${format}`));
      await assert.rejects(importBundle(empty, out), /missing from the bundle/);
    }
  });

  it('exports a multi-platform index whole, listing the chosen platform in manifest.json', async () => {
    const { LocalRegistry } = await import('../../lib/registry/local.ts');
    const { MEDIA } = await import('../../lib/oci/media-types.ts');
    const arm = await syntheticImage('arm64', 1);
    const armDigest = await putImage(src.store, 'multi/app', 'arm64', arm);
    const amdDigest = (await src.store.repositories.getTag('lokolla/nova-api', '2.0.2')) as string;
    await putImage(src.store, 'multi/app', 'amd64', a);
    const size = async (d: string): Promise<number> => (await src.store.blobs.stat(d))!.size;
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [
        { mediaType: MEDIA.dockerManifest, digest: armDigest, size: await size(armDigest), platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: MEDIA.dockerManifest, digest: amdDigest, size: await size(amdDigest), platform: { os: 'linux', architecture: 'amd64' } },
      ],
    }));
    const { digest } = await new LocalRegistry(src.store).putManifest('multi/app', 'latest', index, MEDIA.ociIndex);
    const file = path.join(src.dir, 'multi.tar');
    await exportDockerTar(src.store, await selectImages(src.store, ['multi/app:latest']), file);
    const m = JSON.parse(await readEntry(file, 'manifest.json')) as Array<{ Config: string; RepoTags: string[] }>;
    assert.deepEqual(m, [{ Config: `blobs/sha256/${hex(a.configDigest)}`, RepoTags: ['multi/app:latest'], Layers: a.layers.map((l) => `blobs/sha256/${hex(sha256(l))}`) }]);
    const dst = await openStore(path.join(src.dir, 'other'));
    const res = await importBundle(dst, file);
    assert.equal(res.images[0]?.digest, digest);
    assert.ok(await dst.repositories.getManifestMeta('multi/app', armDigest));
  });

  it('reads --since as a directory, a JSON list or text of digests', async () => {
    const d1 = sha256('one');
    const d2 = sha256('two');
    assert.deepEqual(parseSinceText('f', `# have\n${d1}\n${d2} \n`).digests, [d1, d2]);
    assert.deepEqual(parseSinceText('f', JSON.stringify([d1])).digests, [d1]);
    assert.throws(() => parseSinceText('f', 'nonsense'), /not a digest/);
    const dir = path.join(src.dir, 'first');
    await exportOciDir(src.store, await selectImages(src.store, ['lokolla/keystone:2.0.2']), dir);
    const have = await readSince(src.store, dir);
    assert.equal(have.size, 5);
    await writeFile(path.join(src.dir, 'list.txt'), `${d1}\n`);
    assert.deepEqual([...(await readSince(src.store, path.join(src.dir, 'list.txt')))], [d1]);
  });
});

async function readEntry(file: string, name: string): Promise<string> {
  const extract = tar.extract();
  createReadStream(file).pipe(extract as unknown as NodeJS.WritableStream);
  let out = '';
  for await (const entry of extract) {
    if (entry.header.name === name) {
      for await (const c of entry as unknown as AsyncIterable<Buffer>) out += c.toString();
    } else entry.resume();
  }
  return out;
}
