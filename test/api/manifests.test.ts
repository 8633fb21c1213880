import assert from 'node:assert/strict';
import { digestOf } from '../../lib/oci/digest.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import {
  EMPTY_CONFIG, blob, createFixture, descriptor, expectError, imageManifest, indexManifest, pushBlob, pushImage, pushManifest, putManifest, raw,
  type Fixture,
} from './fixture.ts';

const MiB = 1024 * 1024;

describe('api: manifests', () => {
  let fx: Fixture;
  before(async () => { fx = await createFixture(); });
  after(async () => { await fx.close(); });

  async function expectServed(name: string, reference: string, bytes: Buffer, mediaType: string): Promise<void> {
    const digest = digestOf(bytes);
    for (const method of ['GET', 'HEAD']) {
      const res = await raw(fx.server, method, `/v2/${name}/manifests/${reference}`);
      assert.equal(res.status, 200, `${method} ${name}:${reference}`);
      assert.equal(res.headers['content-type'], mediaType);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal(res.headers['content-length'], String(bytes.length));
      assert.equal(res.headers.etag, `"${digest}"`);
      if (method === 'GET') assert.ok(res.body.equals(bytes), 'served bytes differ from pushed bytes');
    }
  }

  describe('GET, HEAD and PUT by tag and digest', () => {
    it('stores and serves a Docker schema 2 manifest by tag and by digest', async () => {
      const img = await pushImage(fx.api, 'docker/app', 'v1', { format: 'docker' });
      await expectServed('docker/app', 'v1', img.bytes, MEDIA.dockerManifest);
      await expectServed('docker/app', img.digest, img.bytes, MEDIA.dockerManifest);
    });

    it('stores and serves an OCI image manifest by tag and by digest', async () => {
      const img = await pushImage(fx.api, 'oci/app', 'v1', { layers: ['a', 'b', 'c'] });
      await expectServed('oci/app', 'v1', img.bytes, MEDIA.ociManifest);
      await expectServed('oci/app', img.digest, img.bytes, MEDIA.ociManifest);
    });

    it('stores and serves a Docker manifest list over pushed manifests', async () => {
      const amd = await pushImage(fx.api, 'docker/multi', 'amd64', { format: 'docker', layers: ['amd'] });
      const arm = await pushImage(fx.api, 'docker/multi', 'arm64', { format: 'docker', layers: ['arm'] });
      const list = indexManifest([
        { mediaType: MEDIA.dockerManifest, digest: amd.digest, size: amd.size, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: MEDIA.dockerManifest, digest: arm.digest, size: arm.size, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
      ], {}, MEDIA.dockerManifestList);
      const pushed = await pushManifest(fx.api, 'docker/multi', 'latest', list);
      await expectServed('docker/multi', 'latest', pushed.bytes, MEDIA.dockerManifestList);
      await expectServed('docker/multi', pushed.digest, pushed.bytes, MEDIA.dockerManifestList);
    });

    it('stores and serves an OCI index over pushed manifests', async () => {
      const a = await pushImage(fx.api, 'oci/multi', 'a');
      const index = indexManifest([descriptor({ digest: a.digest, size: a.size, bytes: a.bytes }, MEDIA.ociManifest, { platform: { architecture: 'amd64', os: 'linux' } })], {
        annotations: { 'org.opencontainers.image.ref.name': 'multi' },
      });
      const pushed = await pushManifest(fx.api, 'oci/multi', 'latest', index);
      await expectServed('oci/multi', 'latest', pushed.bytes, MEDIA.ociIndex);
    });

    it('stores an artifact manifest with artifactType and the empty config', async () => {
      await pushBlob(fx.api, 'art/sbom', EMPTY_CONFIG.bytes);
      const payload = await pushBlob(fx.api, 'art/sbom', '{"sbom":true}');
      const m = imageManifest(descriptor(EMPTY_CONFIG, MEDIA.ociEmpty), [descriptor(payload, 'application/spdx+json')], { artifactType: 'application/vnd.example.sbom.v1' });
      const pushed = await pushManifest(fx.api, 'art/sbom', 'v1', m);
      await expectServed('art/sbom', 'v1', pushed.bytes, MEDIA.ociManifest);
    });

    it('stores an artifact whose type is its config media type', async () => {
      const cfg = await pushBlob(fx.api, 'art/helm', '{"name":"chart","version":"1.0.0"}');
      const layer = await pushBlob(fx.api, 'art/helm', 'chart-tgz');
      const m = imageManifest(descriptor(cfg, 'application/vnd.cncf.helm.config.v1+json'), [descriptor(layer, 'application/vnd.cncf.helm.chart.content.v1.tar+gzip')]);
      const pushed = await pushManifest(fx.api, 'art/helm', '1.0.0', m);
      await expectServed('art/helm', '1.0.0', pushed.bytes, MEDIA.ociManifest);
    });

    it('stores an artifact with no layers at all', async () => {
      await pushBlob(fx.api, 'art/empty', EMPTY_CONFIG.bytes);
      const m = imageManifest(descriptor(EMPTY_CONFIG, MEDIA.ociEmpty), [], { artifactType: 'application/vnd.example.note' });
      const pushed = await pushManifest(fx.api, 'art/empty', 'note', m);
      await expectServed('art/empty', 'note', pushed.bytes, MEDIA.ociManifest);
    });

    it('serves the stored bytes byte for byte, odd whitespace and key order included', async () => {
      const cfg = await pushBlob(fx.api, 'bytes/app', '{"architecture":"amd64","os":"linux"}');
      const text = `\n  {  "schemaVersion" :2,\t"layers":[ ],\r\n "config":{"size":${cfg.size},"digest":"${cfg.digest}",  "mediaType":"${MEDIA.ociConfig}"},\n\n"mediaType":"${MEDIA.ociManifest}"  }  \n\n`;
      const pushed = await pushManifest(fx.api, 'bytes/app', 'odd', Buffer.from(text), MEDIA.ociManifest);
      assert.equal(pushed.digest, digestOf(Buffer.from(text)));
      await expectServed('bytes/app', 'odd', Buffer.from(text), MEDIA.ociManifest);
    });

    it('keeps the media type from Content-Type when the manifest has no mediaType field', async () => {
      const cfg = await pushBlob(fx.api, 'bytes/notype', '{"os":"linux"}');
      const m = { schemaVersion: 2, config: descriptor(cfg, MEDIA.dockerConfig), layers: [] };
      const pushed = await pushManifest(fx.api, 'bytes/notype', 'v1', m, MEDIA.dockerManifest);
      await expectServed('bytes/notype', 'v1', pushed.bytes, MEDIA.dockerManifest);
    });

    it('answers the PUT with 201, Location by digest and Docker-Content-Digest', async () => {
      const cfg = await pushBlob(fx.api, 'put/loc', '{"os":"linux"}');
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), []);
      const res = await putManifest(fx.api, 'put/loc', 'v1', m);
      const digest = digestOf(Buffer.from(JSON.stringify(m)));
      assert.equal(res.status, 201);
      assert.equal(res.headers.location, `/v2/put/loc/manifests/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal(res.headers['content-length'], '0');
    });

    it('answers 304 to If-None-Match with the current ETag', async () => {
      const img = await pushImage(fx.api, 'etag/app', 'v1');
      const res = await fx.api.get('/v2/etag/app/manifests/v1').set('If-None-Match', `"${img.digest}"`);
      assert.equal(res.status, 304);
      const other = await fx.api.get('/v2/etag/app/manifests/v1').set('If-None-Match', '"sha256:other"');
      assert.equal(other.status, 200);
    });

    it('moves a tag when another manifest is pushed to it', async () => {
      const first = await pushImage(fx.api, 'retag/app', 'latest', { layers: ['one'] });
      const second = await pushImage(fx.api, 'retag/app', 'latest', { layers: ['two'] });
      const res = await fx.api.get('/v2/retag/app/manifests/latest');
      assert.equal(res.headers['docker-content-digest'], second.digest);
      const old = await fx.api.head(`/v2/retag/app/manifests/${first.digest}`);
      assert.equal(old.status, 200, 'the old manifest stays reachable by digest');
    });

    it('takes concurrent PUTs of one manifest, to one tag and to several, without harm', async () => {
      const cfg = await pushBlob(fx.api, 'race/app', '{"os":"linux","race":true}');
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), []);
      const refs = ['same', 'same', 'same', 'one', 'two', digestOf(Buffer.from(JSON.stringify(m)))];
      const results = await Promise.all(refs.map((ref) => putManifest(fx.api, 'race/app', ref, m)));
      for (const r of results) assert.equal(r.status, 201, r.text);
      for (const ref of new Set(refs)) await expectServed('race/app', ref, Buffer.from(JSON.stringify(m)), MEDIA.ociManifest);
      assert.deepEqual((await fx.api.get('/v2/race/app/tags/list')).body.tags, ['one', 'same', 'two']);
    });

    it('serves a manifest under /blobs/ too, as its repository holds it', async () => {
      const img = await pushImage(fx.api, 'asblob/app', 'v1');
      const res = await fx.api.get(`/v2/asblob/app/blobs/${img.digest}`);
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(res.body as Buffer).equals(img.bytes));
    });

    it('answers MANIFEST_UNKNOWN for an unknown tag, an unknown digest and another repository', async () => {
      const img = await pushImage(fx.api, 'known/app', 'v1');
      expectError(await fx.api.get('/v2/known/app/manifests/v2'), 404, 'MANIFEST_UNKNOWN');
      expectError(await fx.api.get(`/v2/known/app/manifests/${digestOf('nothing')}`), 404, 'MANIFEST_UNKNOWN');
      expectError(await fx.api.get(`/v2/other/app/manifests/${img.digest}`), 404, 'MANIFEST_UNKNOWN');
      expectError(await fx.api.get('/v2/never/pushed/manifests/latest'), 404, 'MANIFEST_UNKNOWN');
      const head = await fx.api.head('/v2/known/app/manifests/v2');
      expectError(head, 404, 'MANIFEST_UNKNOWN');
      assert.equal(head.text, undefined, 'a HEAD answer has no body');
    });
  });

  describe('PUT validation', () => {
    let cfg: ReturnType<typeof blob>;
    const config = '{"architecture":"arm64","os":"linux"}';
    before(async () => {
      cfg = await pushBlob(fx.api, 'val/app', config);
      // Blobs belong to repositories: the tag tests below push manifests under val/tags.
      await pushBlob(fx.api, 'val/tags', config);
    });

    const invalid: Array<[string, string | Record<string, unknown>]> = [
      ['bad JSON', '{"schemaVersion": 2,'],
      ['an empty body', ''],
      ['a JSON array', '[1,2,3]'],
      ['a JSON string', '"manifest"'],
      ['no schemaVersion', { mediaType: MEDIA.ociManifest, config: {}, layers: [] }],
      ['schemaVersion 3', { schemaVersion: 3, mediaType: MEDIA.ociManifest, layers: [] }],
      ['no config', { schemaVersion: 2, mediaType: MEDIA.ociManifest, layers: [] }],
      ['no layers', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: digestOf('x'), size: 1 } }],
      ['layers not an array', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: digestOf('x'), size: 1 }, layers: {} }],
      ['a descriptor without digest', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, size: 1 }, layers: [] }],
      ['a descriptor with a malformed digest', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: 'sha256:zz', size: 1 }, layers: [] }],
      ['a negative size', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: digestOf('x'), size: -1 }, layers: [] }],
      ['an index without manifests', { schemaVersion: 2, mediaType: MEDIA.ociIndex }],
      ['an unknown manifest mediaType', { schemaVersion: 2, mediaType: 'application/vnd.example.manifest+json', config: {}, layers: [] }],
      ['a Docker schema 1 manifest', { schemaVersion: 1, name: 'val/app', tag: 'v1', architecture: 'amd64', fsLayers: [], history: [], signatures: [] }],
    ];
    for (const [what, body] of invalid) {
      it(`answers MANIFEST_INVALID for ${what}`, async () => {
        const res = await putManifest(fx.api, 'val/app', 'bad', typeof body === 'string' ? Buffer.from(body) : body, MEDIA.ociManifest);
        expectError(res, 400, 'MANIFEST_INVALID');
        expectError(await fx.api.get('/v2/val/app/manifests/bad'), 404, 'MANIFEST_UNKNOWN');
      });
    }

    it('answers MANIFEST_INVALID for a schema 1 manifest sent with its own media type', async () => {
      const body = { schemaVersion: 1, name: 'val/app', tag: 'v1', architecture: 'amd64', fsLayers: [], history: [] };
      const res = await putManifest(fx.api, 'val/app', 'v1', body, 'application/vnd.docker.distribution.manifest.v1+prettyjws');
      expectError(res, 400, 'MANIFEST_INVALID');
    });

    it('answers MANIFEST_INVALID when the body mediaType and Content-Type disagree', async () => {
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), [], {}, MEDIA.ociManifest);
      expectError(await putManifest(fx.api, 'val/app', 'v1', m, MEDIA.dockerManifest), 400, 'MANIFEST_INVALID');
    });

    it('answers MANIFEST_INVALID when a descriptor size does not match the blob', async () => {
      const m = imageManifest({ ...descriptor(cfg, MEDIA.ociConfig), size: cfg.size + 1 }, []);
      expectError(await putManifest(fx.api, 'val/app', 'v1', m), 400, 'MANIFEST_INVALID');
    });

    it('answers MANIFEST_BLOB_UNKNOWN, naming the digest, for a layer the registry does not hold', async () => {
      const missing = blob('never uploaded');
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), [descriptor(missing, MEDIA.ociLayerGzip)]);
      const res = await putManifest(fx.api, 'val/app', 'v1', m);
      expectError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
      assert.deepEqual((res.body as { errors: Array<{ detail: unknown }> }).errors[0]?.detail, { digest: missing.digest });
    });

    it('answers MANIFEST_BLOB_UNKNOWN for a config the registry does not hold', async () => {
      const m = imageManifest(descriptor(blob('{"no":"config"}'), MEDIA.ociConfig), []);
      expectError(await putManifest(fx.api, 'val/app', 'v1', m), 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    it('answers MANIFEST_BLOB_UNKNOWN for an index whose child manifest is not in the repository', async () => {
      const other = await pushImage(fx.api, 'val/other', 'v1');
      const index = indexManifest([{ mediaType: MEDIA.ociManifest, digest: other.digest, size: other.size }]);
      expectError(await putManifest(fx.api, 'val/app', 'idx', index), 400, 'MANIFEST_BLOB_UNKNOWN');
      const none = indexManifest([{ mediaType: MEDIA.ociManifest, digest: digestOf('no manifest'), size: 11 }]);
      expectError(await putManifest(fx.api, 'val/app', 'idx', none), 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    it('accepts a non-distributable layer it does not hold', async () => {
      const foreign = blob('windows base layer');
      const m = imageManifest(descriptor(cfg, MEDIA.dockerConfig), [descriptor(foreign, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', { urls: ['https://example.invalid/layer'] })], {}, MEDIA.dockerManifest);
      await pushManifest(fx.api, 'val/app', 'foreign', m);
    });

    it('accepts a manifest of exactly 4 MiB', async () => {
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), [], { annotations: { pad: '' } });
      const base = Buffer.byteLength(JSON.stringify(m));
      m.annotations = { pad: 'x'.repeat(4 * MiB - base) };
      const bytes = Buffer.from(JSON.stringify(m));
      assert.equal(bytes.length, 4 * MiB);
      const pushed = await pushManifest(fx.api, 'val/app', 'big', bytes, MEDIA.ociManifest);
      const res = await fx.api.head(`/v2/val/app/manifests/${pushed.digest}`);
      assert.equal(res.headers['content-length'], String(4 * MiB));
    });

    it('answers 413 SIZE_INVALID for a manifest over 4 MiB, declared or streamed', async () => {
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), [], { annotations: { pad: '' } });
      const base = Buffer.byteLength(JSON.stringify(m));
      m.annotations = { pad: 'x'.repeat(4 * MiB - base + 1) };
      const bytes = Buffer.from(JSON.stringify(m));
      expectError(await putManifest(fx.api, 'val/app', 'toobig', bytes, MEDIA.ociManifest), 413, 'SIZE_INVALID');
      // Without a Content-Length the limit is enforced while reading.
      const chunked = fx.api.put('/v2/val/app/manifests/toobig').set('Content-Type', MEDIA.ociManifest);
      chunked.write(bytes.subarray(0, MiB));
      chunked.write(bytes.subarray(MiB));
      expectError(await chunked, 413, 'SIZE_INVALID');
      expectError(await fx.api.get('/v2/val/app/manifests/toobig'), 404, 'MANIFEST_UNKNOWN');
    });

    for (const tag of ['v1', 'latest', '_x', 'a.b-c_D', '1', 'x'.repeat(128)]) {
      it(`accepts the tag ${tag.length > 20 ? `of ${tag.length} characters` : JSON.stringify(tag)}`, async () => {
        const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), []);
        await pushManifest(fx.api, 'val/tags', tag, m);
        assert.equal((await fx.api.head(`/v2/val/tags/manifests/${tag}`)).status, 200);
      });
    }

    for (const tag of ['-x', '.x', 'a+b', 'a%20b', 'x'.repeat(129), '%C3%A9t%C3%A9']) {
      it(`refuses the tag ${tag.length > 20 ? `of ${tag.length} characters` : JSON.stringify(tag)} with MANIFEST_INVALID`, async () => {
        const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), []);
        expectError(await putManifest(fx.api, 'val/tags', tag, m), 400, 'MANIFEST_INVALID');
      });

      it(`answers GET and HEAD of the tag ${tag.length > 20 ? `of ${tag.length} characters` : JSON.stringify(tag)} with MANIFEST_UNKNOWN (404: it cannot exist)`, async () => {
        expectError(await fx.api.get(`/v2/val/tags/manifests/${tag}`), 404, 'MANIFEST_UNKNOWN');
        expectError(await fx.api.head(`/v2/val/tags/manifests/${tag}`), 404, 'MANIFEST_UNKNOWN');
      });
    }
  });

  describe('push by digest', () => {
    it('stores a manifest under its digest without a tag', async () => {
      const cfg = await pushBlob(fx.api, 'bydigest/app', '{"os":"linux","by":"digest"}');
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), []);
      const digest = digestOf(Buffer.from(JSON.stringify(m)));
      const res = await putManifest(fx.api, 'bydigest/app', digest, m);
      assert.equal(res.status, 201);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal(res.headers.location, `/v2/bydigest/app/manifests/${digest}`);
      assert.equal((await fx.api.head(`/v2/bydigest/app/manifests/${digest}`)).status, 200);
      const tags = await fx.api.get('/v2/bydigest/app/tags/list');
      assert.deepEqual(tags.body, { name: 'bydigest/app', tags: [] });
    });

    it('stores a manifest under a sha512 digest', async () => {
      const cfg = await pushBlob(fx.api, 'bydigest/app', '{"os":"linux","by":"sha512"}');
      const bytes = Buffer.from(JSON.stringify(imageManifest(descriptor(cfg, MEDIA.ociConfig), [])));
      const digest = digestOf(bytes, 'sha512');
      const res = await putManifest(fx.api, 'bydigest/app', digest, bytes, MEDIA.ociManifest);
      assert.equal(res.status, 201);
      assert.equal(res.headers['docker-content-digest'], digest);
      const got = await fx.api.get(`/v2/bydigest/app/manifests/${digest}`);
      assert.equal(got.status, 200);
      assert.equal(got.headers['docker-content-digest'], digest);
    });

    it('answers DIGEST_INVALID when the digest in the URL does not match the body', async () => {
      const cfg = await pushBlob(fx.api, 'bydigest/app', '{"os":"linux","by":"wrong"}');
      const m = imageManifest(descriptor(cfg, MEDIA.ociConfig), []);
      const wrong = digestOf('something else');
      expectError(await putManifest(fx.api, 'bydigest/app', wrong, m), 400, 'DIGEST_INVALID');
      expectError(await fx.api.get(`/v2/bydigest/app/manifests/${wrong}`), 404, 'MANIFEST_UNKNOWN');
      expectError(await fx.api.get(`/v2/bydigest/app/manifests/${digestOf(Buffer.from(JSON.stringify(m)))}`), 404, 'MANIFEST_UNKNOWN');
    });

    it('answers DIGEST_INVALID for a malformed digest reference', async () => {
      const m = imageManifest({ mediaType: MEDIA.ociConfig, digest: digestOf('x'), size: 1 }, []);
      expectError(await putManifest(fx.api, 'bydigest/app', 'sha256:zz', m), 400, 'DIGEST_INVALID');
      expectError(await putManifest(fx.api, 'bydigest/app', `md5:${'a'.repeat(32)}`, m), 400, 'DIGEST_INVALID');
    });
  });

  describe('subject', () => {
    it('answers OCI-Subject with the subject digest, even when the subject is not there yet', async () => {
      await pushBlob(fx.api, 'subj/app', EMPTY_CONFIG.bytes);
      const subject = { mediaType: MEDIA.ociManifest, digest: digestOf('future subject'), size: 14 };
      const m = imageManifest(descriptor(EMPTY_CONFIG, MEDIA.ociEmpty), [], { artifactType: 'application/vnd.example.sig', subject });
      const res = await putManifest(fx.api, 'subj/app', digestOf(Buffer.from(JSON.stringify(m))), m);
      assert.equal(res.status, 201);
      assert.equal(res.headers['oci-subject'], subject.digest);
    });

    it('sends no OCI-Subject for a manifest without subject', async () => {
      const cfg = await pushBlob(fx.api, 'subj/app', '{"os":"linux"}');
      const res = await putManifest(fx.api, 'subj/app', 'plain', imageManifest(descriptor(cfg, MEDIA.ociConfig), []));
      assert.equal(res.status, 201);
      assert.equal(res.headers['oci-subject'], undefined);
    });
  });

  describe('blobs belong to repositories', () => {
    it('refuses a manifest whose blob is held only by another repository, and never serves that blob here', async () => {
      const secret = await pushBlob(fx.api, 'private/app', '{"os":"linux","secret":true}');
      const m = imageManifest(descriptor(secret, MEDIA.ociConfig), []);
      expectError(await putManifest(fx.api, 'thief/app', 'v1', m), 400, 'MANIFEST_BLOB_UNKNOWN');
      expectError(await fx.api.get(`/v2/thief/app/blobs/${secret.digest}`), 404, 'BLOB_UNKNOWN');
      // Once the blob is pushed there, the same manifest is accepted.
      await pushBlob(fx.api, 'thief/app', '{"os":"linux","secret":true}');
      await pushManifest(fx.api, 'thief/app', 'v1', m);
    });
  });

  describe('DELETE', () => {
    it('deletes a tag (202) and keeps the manifest by digest', async () => {
      const img = await pushImage(fx.api, 'del/tag', 'v1');
      await pushManifest(fx.api, 'del/tag', 'v2', img.bytes, MEDIA.ociManifest);
      const res = await fx.api.delete('/v2/del/tag/manifests/v1');
      assert.equal(res.status, 202);
      expectError(await fx.api.get('/v2/del/tag/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
      assert.equal((await fx.api.head(`/v2/del/tag/manifests/${img.digest}`)).status, 200);
      assert.equal((await fx.api.head('/v2/del/tag/manifests/v2')).status, 200);
    });

    it('deletes a manifest by digest (202) with every tag that points at it', async () => {
      const img = await pushImage(fx.api, 'del/digest', 'v1');
      await pushManifest(fx.api, 'del/digest', 'v2', img.bytes, MEDIA.ociManifest);
      const res = await fx.api.delete(`/v2/del/digest/manifests/${img.digest}`);
      assert.equal(res.status, 202);
      for (const ref of [img.digest, 'v1', 'v2']) expectError(await fx.api.get(`/v2/del/digest/manifests/${ref}`), 404, 'MANIFEST_UNKNOWN');
      const tags = await fx.api.get('/v2/del/digest/tags/list');
      assert.deepEqual(tags.body.tags, []);
    });

    it('answers MANIFEST_UNKNOWN when deleting what is not there', async () => {
      expectError(await fx.api.delete('/v2/del/none/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
      expectError(await fx.api.delete(`/v2/del/none/manifests/${digestOf('none')}`), 404, 'MANIFEST_UNKNOWN');
    });
  });
});
