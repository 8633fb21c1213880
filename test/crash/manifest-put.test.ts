import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '../../lib/oci/digest.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { LocalRegistry } from '../../lib/registry/local.ts';
import { openStore } from '../../lib/storage/store.ts';
import { sleep } from '../helpers/processes.ts';
import { blob, descriptor, imageManifest, pushBlob, putManifest, raw, type Blob } from '../api/fixture.ts';
import { CRASH_HOST, expectAbsent, openRequest, startMirrorProcess, verifyBlobStore, writeInPieces, type MirrorProcess } from './mirror-process.ts';

const MiB = 1024 * 1024;

describe('crash: SIGKILL of the mirror during manifest PUTs', function () {
  this.timeout(120_000);
  const name = `${CRASH_HOST}/manifests`;
  let dir: string;
  let mirror: MirrorProcess | undefined;
  let config: Blob;
  let layer: Blob;

  /** A valid manifest over the pushed blobs, padded to about `size` bytes. */
  function manifest(label: string, size: number): Buffer {
    const m = imageManifest(descriptor(config, MEDIA.ociConfig), [descriptor(layer, MEDIA.ociLayerGzip)], { annotations: { label, pad: '' } });
    const base = Buffer.byteLength(JSON.stringify(m));
    m.annotations = { label, pad: 'p'.repeat(Math.max(0, size - base)) };
    return Buffer.from(JSON.stringify(m));
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-crash-manifest-'));
    mirror = await startMirrorProcess(dir);
    config = await pushBlob(mirror.api, name, '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    layer = await pushBlob(mirror.api, name, blob(Buffer.alloc(64 * 1024, 7)));
  });
  after(async () => {
    await mirror?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function expectServed(m: MirrorProcess, reference: string, bytes: Buffer): Promise<void> {
    const res = await raw(m.port, 'GET', `/v2/${name}/manifests/${reference}`);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.equals(bytes), 'served manifest differs from the pushed bytes');
    assert.equal(res.headers['docker-content-digest'], digestOf(bytes));
  }

  it('shows nothing of a manifest whose PUT body was cut by SIGKILL, and takes it after a restart', async () => {
    const bytes = manifest('cut', 3 * MiB);
    const digest = digestOf(bytes);
    const put = openRequest(mirror!.port, 'PUT', `/v2/${name}/manifests/cut`, { 'Content-Type': MEDIA.ociManifest, 'Content-Length': String(bytes.length) });
    await writeInPieces(put.req, bytes.subarray(0, 2 * MiB), 256 * 1024);
    await sleep(300);
    await mirror!.kill9();
    assert.ok((await put.outcome) instanceof Error, 'the PUT got no answer');

    const held = await verifyBlobStore(dir);
    assert.ok(!held.includes(digest), 'the cut manifest became a blob');
    const local = new LocalRegistry(await openStore(dir));
    await assert.rejects(local.getManifest(name, 'cut'), { code: 'MANIFEST_UNKNOWN' });
    await assert.rejects(local.getManifest(name, digest), { code: 'MANIFEST_UNKNOWN' });

    mirror = await startMirrorProcess(dir);
    expectAbsent(await raw(mirror.port, 'GET', `/v2/${name}/manifests/cut`), 'MANIFEST_UNKNOWN');
    expectAbsent(await raw(mirror.port, 'GET', `/v2/${name}/manifests/${digest}`), 'MANIFEST_UNKNOWN');
    const res = await putManifest(mirror.api, name, 'cut', bytes, MEDIA.ociManifest);
    assert.equal(res.status, 201, res.text);
    await expectServed(mirror, 'cut', bytes);
    await expectServed(mirror, digest, bytes);
  });

  it('leaves a manifest whole or absent when SIGKILL races its PUT, and the push can be repeated', async () => {
    // The kill lands at different points of the write phase: right after the body, then later.
    for (const [i, delayMs] of [0, 3, 15].entries()) {
      const tag = `race-${i}`;
      const bytes = manifest(tag, 256 * 1024);
      const digest = digestOf(bytes);
      const put = openRequest(mirror!.port, 'PUT', `/v2/${name}/manifests/${tag}`, { 'Content-Type': MEDIA.ociManifest, 'Content-Length': String(bytes.length) });
      await new Promise<void>((resolve) => put.req.end(bytes, resolve));
      await sleep(delayMs);
      await mirror!.kill9();
      const outcome = await put.outcome;

      await verifyBlobStore(dir);
      mirror = await startMirrorProcess(dir);
      const byTag = await raw(mirror.port, 'GET', `/v2/${name}/manifests/${tag}`);
      const byDigest = await raw(mirror.port, 'GET', `/v2/${name}/manifests/${digest}`);
      console.log(`      kill ${delayMs} ms after the body: answer ${outcome instanceof Error ? 'none' : outcome}, by tag ${byTag.status}, by digest ${byDigest.status}`);
      if (outcome === 201) {
        assert.equal(byTag.status, 200, 'an acknowledged PUT must survive the kill');
      }
      if (byTag.status === 200) {
        assert.ok(byTag.body.equals(bytes));
        assert.equal(byDigest.status, 200, 'a tag must never point at a missing manifest');
      } else {
        expectAbsent(byTag, 'MANIFEST_UNKNOWN');
      }
      if (byDigest.status === 200) assert.ok(byDigest.body.equals(bytes));
      else expectAbsent(byDigest, 'MANIFEST_UNKNOWN');

      const again = await putManifest(mirror.api, name, tag, bytes, MEDIA.ociManifest);
      assert.equal(again.status, 201, again.text);
      await expectServed(mirror, tag, bytes);
    }
    // Everything pushed before the kills is still there.
    await expectServed(mirror!, 'cut', manifest('cut', 3 * MiB));
    const tags = await mirror!.api.get(`/v2/${name}/tags/list`);
    assert.deepEqual(tags.body.tags, ['cut', 'race-0', 'race-1', 'race-2']);
  });
});
