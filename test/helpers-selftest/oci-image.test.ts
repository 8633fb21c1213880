import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { buildImage, buildIndex, blobsOf, openBlob, writeOciLayout } from '../helpers/oci-image.ts';
import { helloElf } from '../helpers/hello-elf.ts';
import { run } from '../helpers/processes.ts';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function streamDigest(s: NodeJS.ReadableStream): Promise<string> {
  const h = createHash('sha256');
  for await (const c of s) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

describe('helpers: oci-image', () => {
  let tmp: string;
  before(async () => { tmp = await mkdtemp(path.join(os.tmpdir(), 'ferry-selftest-img-')); });
  after(async () => { await rm(tmp, { recursive: true, force: true }); });

  it('builds the same bytes for the same seed and different bytes for another seed', async () => {
    const a = await buildImage({ layers: [1000, 5000], seed: 'determinism' });
    const b = await buildImage({ layers: [1000, 5000], seed: 'determinism' });
    const c = await buildImage({ layers: [1000, 5000], seed: 'determinism-2' });
    assert.equal(a.manifestDigest, b.manifestDigest);
    assert.deepEqual(a.layers.map((l) => l.digest), b.layers.map((l) => l.digest));
    assert.notEqual(a.manifestDigest, c.manifestDigest);
    assert.notEqual(a.layers[0]?.digest, c.layers[0]?.digest);
    assert.notEqual(a.layers[0]?.digest, a.layers[1]?.digest);
  });

  it('describes each blob by the digest of its bytes, and each layer by the digest of its tar', async () => {
    const img = await buildImage({ layers: [3000], seed: 'digests', runnable: true });
    assert.equal(img.manifestDigest, sha(img.manifest));
    assert.equal(img.configDigest, sha(img.config));
    const config = JSON.parse(img.config.toString()) as { rootfs: { diff_ids: string[] }; config: { Entrypoint?: string[] } };
    assert.deepEqual(config.config.Entrypoint, ['/hello']);
    for (const [i, layer] of img.layers.entries()) {
      const bytes = await readFile(layer.path);
      assert.equal(layer.size, bytes.length);
      assert.equal(layer.digest, sha(bytes));
      assert.deepEqual(layer.bytes, bytes);
      assert.equal(config.rootfs.diff_ids[i], sha(gunzipSync(bytes)));
      assert.equal(await streamDigest(openBlob(img, layer.digest)), layer.digest);
    }
    const manifest = JSON.parse(img.manifest.toString()) as { mediaType: string; layers: Array<{ digest: string; size: number }> };
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(manifest.layers.map((l) => l.digest), img.layers.map((l) => l.digest));
    assert.deepEqual(blobsOf(img).map((b) => b.digest), [img.configDigest, ...img.layers.map((l) => l.digest)]);
  });

  it('writes layers that tar lists with fixed mtimes and the requested amount of data', async () => {
    const img = await buildImage({ layers: [123_456], seed: 'tar-listing' });
    const layer = img.layers[0];
    assert.ok(layer);
    const res = await run('tar', ['--numeric-owner', '-tvzf', layer.path]);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? '', /^drwxr-xr-x 0\/0 +0 2024-01-01 00:00 ferry\/$/);
    assert.match(lines[1] ?? '', /^-rw-r--r-- 0\/0 +123456 2024-01-01 00:00 ferry\/data-[0-9a-f]{16}\.bin$/);
  });

  it('streams a 64 MiB layer to a file without holding it in memory', async function () {
    this.timeout(30_000);
    const img = await buildImage({ layers: [64 << 20], seed: `big-${Date.now()}` });
    const layer = img.layers[0];
    assert.ok(layer);
    assert.equal(layer.bytes, undefined);
    assert.ok(layer.size > 64 << 20 && layer.size < (64 << 20) + 64 * 1024, `size ${layer.size}`);
    assert.equal(await streamDigest(openBlob(img, layer.digest)), layer.digest);
    // A fresh seed each run proves the build, so drop it from the cache rather than let it pile up.
    await rm(layer.path, { force: true });
    await rm(layer.path.replace(/\.tar\.gz$/, '.json'), { force: true });
  });

  it('builds Docker v2s2 manifests with Docker media types', async () => {
    const img = await buildImage({ layers: [10], seed: 'docker-format', format: 'docker' });
    const m = JSON.parse(img.manifest.toString()) as { mediaType: string; config: { mediaType: string }; layers: Array<{ mediaType: string }> };
    assert.equal(m.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(m.config.mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.equal(m.layers[0]?.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  });

  it('writes an OCI layout holding every blob under its digest and the ref in index.json', async () => {
    const img = await buildImage({ layers: [100, 200], seed: 'layout' });
    const arm = await buildImage({ layers: [100], seed: 'layout-arm', platform: { os: 'linux', architecture: 'arm64' } });
    const index = buildIndex([img, arm]);
    const dir = path.join(tmp, 'layout');
    await writeOciLayout(dir, img, 'v1');
    await writeOciLayout(dir, index, 'multi');
    const files = new Set(await readdir(path.join(dir, 'blobs', 'sha256')));
    for (const d of [img.manifestDigest, index.manifestDigest, arm.manifestDigest, ...blobsOf(index).map((b) => b.digest)]) {
      assert.ok(files.has(d.slice(7)), `missing ${d}`);
      assert.equal(sha(await readFile(path.join(dir, 'blobs', 'sha256', d.slice(7)))), d);
    }
    const idx = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    assert.deepEqual(idx.manifests.map((m) => [m.annotations['org.opencontainers.image.ref.name'], m.digest]), [['v1', img.manifestDigest], ['multi', index.manifestDigest]]);
    assert.deepEqual(JSON.parse(await readFile(path.join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  });

  it('makes a static executable that prints its message', async function () {
    if (os.arch() !== 'x64') this.skip();
    const file = path.join(tmp, 'hello');
    const { writeFile, chmod } = await import('node:fs/promises');
    await writeFile(file, helloElf('ferry says hi\n'));
    await chmod(file, 0o755);
    const res = await run(file, []);
    assert.equal(res.code, 0);
    assert.equal(res.stdout, 'ferry says hi\n');
  });
});
