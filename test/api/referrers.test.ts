import assert from 'node:assert/strict';
import { digestOf } from '../../lib/oci/digest.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import {
  EMPTY_CONFIG, createFixture, descriptor, expectError, imageManifest, indexManifest, pushBlob, pushImage, pushManifest,
  type Fixture, type Pushed, type PushedImage,
} from './fixture.ts';

const SBOM = 'application/vnd.example.sbom.v1';
const SIG = 'application/vnd.example.signature.v1';
const HELM = 'application/vnd.cncf.helm.config.v1+json';

interface IndexBody {
  schemaVersion: number;
  mediaType: string;
  manifests: Array<Record<string, unknown>>;
}

describe('api: referrers', () => {
  let fx: Fixture;
  let subject: PushedImage;
  let sbom: Pushed;
  let sig: Pushed;
  let helm: Pushed;
  let image: Pushed;
  let typedIndex: Pushed;
  let plainIndex: Pushed;

  before(async () => {
    fx = await createFixture();
    subject = await pushImage(fx.api, 'ref/app', 'v1');
    const subj = { mediaType: MEDIA.ociManifest, digest: subject.digest, size: subject.size };
    await pushBlob(fx.api, 'ref/app', EMPTY_CONFIG.bytes);
    const payload = await pushBlob(fx.api, 'ref/app', '{"spdxVersion":"SPDX-2.3"}');

    sbom = await pushManifest(fx.api, 'ref/app', 'sbom', imageManifest(descriptor(EMPTY_CONFIG, MEDIA.ociEmpty), [descriptor(payload, 'application/spdx+json')], {
      artifactType: SBOM, subject: subj, annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.sbom.format': 'spdx' },
    }));
    sig = await pushManifest(fx.api, 'ref/app', digestOf(Buffer.from(JSON.stringify(imageManifest(descriptor(EMPTY_CONFIG, MEDIA.ociEmpty), [], { artifactType: SIG, subject: subj })))),
      imageManifest(descriptor(EMPTY_CONFIG, MEDIA.ociEmpty), [], { artifactType: SIG, subject: subj }));
    const helmCfg = await pushBlob(fx.api, 'ref/app', '{"name":"chart"}');
    helm = await pushManifest(fx.api, 'ref/app', 'helm', imageManifest(descriptor(helmCfg, HELM), [], { subject: subj }));
    const imgCfg = await pushBlob(fx.api, 'ref/app', '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    image = await pushManifest(fx.api, 'ref/app', 'image', imageManifest(descriptor(imgCfg, MEDIA.ociConfig), [], { subject: subj }));
    const child = { mediaType: MEDIA.ociManifest, digest: subject.digest, size: subject.size };
    typedIndex = await pushManifest(fx.api, 'ref/app', 'typed-index', indexManifest([child], { artifactType: 'application/vnd.example.bundle', subject: subj, annotations: { k: 'v' } }));
    plainIndex = await pushManifest(fx.api, 'ref/app', 'plain-index', indexManifest([child], { subject: subj }));
  });
  after(async () => { await fx.close(); });

  async function referrers(query = ''): Promise<{ body: IndexBody; headers: Record<string, string | undefined> }> {
    const res = await fx.api.get(`/v2/ref/app/referrers/${subject.digest}${query}`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['content-type'], MEDIA.ociIndex);
    const body = res.body as IndexBody;
    assert.equal(body.schemaVersion, 2);
    assert.equal(body.mediaType, MEDIA.ociIndex);
    return { body, headers: res.headers as Record<string, string | undefined> };
  }

  function byDigest(body: IndexBody, digest: string): Record<string, unknown> | undefined {
    return body.manifests.find((d) => d.digest === digest);
  }

  it('answers an OCI index of every manifest whose subject is the digest', async () => {
    const { body, headers } = await referrers();
    assert.deepEqual(body.manifests.map((d) => d.digest).sort(), [sbom, sig, helm, image, typedIndex, plainIndex].map((p) => p.digest).sort());
    assert.equal(headers['oci-filters-applied'], undefined);
  });

  it('describes each referrer with its media type, digest, size, artifactType and annotations', async () => {
    const { body } = await referrers();
    assert.deepEqual(byDigest(body, sbom.digest), {
      mediaType: MEDIA.ociManifest, digest: sbom.digest, size: sbom.size, artifactType: SBOM,
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.sbom.format': 'spdx' },
    });
    assert.deepEqual(byDigest(body, sig.digest), { mediaType: MEDIA.ociManifest, digest: sig.digest, size: sig.size, artifactType: SIG });
  });

  it('uses the config media type as artifactType when the manifest has none', async () => {
    const { body } = await referrers();
    assert.equal(byDigest(body, helm.digest)?.artifactType, HELM);
    assert.equal(byDigest(body, image.digest)?.artifactType, MEDIA.ociConfig);
  });

  it('gives an index its own artifactType and omits it when the index has none', async () => {
    const { body } = await referrers();
    assert.deepEqual(byDigest(body, typedIndex.digest), { mediaType: MEDIA.ociIndex, digest: typedIndex.digest, size: typedIndex.size, artifactType: 'application/vnd.example.bundle', annotations: { k: 'v' } });
    assert.equal('artifactType' in (byDigest(body, plainIndex.digest) ?? {}), false);
  });

  it('filters on artifactType and says so in OCI-Filters-Applied', async () => {
    const { body, headers } = await referrers(`?artifactType=${encodeURIComponent(SBOM)}`);
    assert.deepEqual(body.manifests.map((d) => d.digest), [sbom.digest]);
    assert.equal(headers['oci-filters-applied'], 'artifactType');
    const cfg = await referrers(`?artifactType=${encodeURIComponent(HELM)}`);
    assert.deepEqual(cfg.body.manifests.map((d) => d.digest), [helm.digest]);
  });

  it('answers an empty index for a filter nothing matches', async () => {
    const { body, headers } = await referrers('?artifactType=application/vnd.example.none');
    assert.deepEqual(body.manifests, []);
    assert.equal(headers['oci-filters-applied'], 'artifactType');
  });

  it('answers an empty index (never 404) for an unknown subject or repository', async () => {
    for (const path of [`/v2/ref/app/referrers/${digestOf('no such subject')}`, `/v2/ref/unknown/referrers/${subject.digest}`]) {
      const res = await fx.api.get(path);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], MEDIA.ociIndex);
      assert.deepEqual(res.body, { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] });
    }
  });

  it('lists a referrer pushed before its subject', async () => {
    const future = { mediaType: MEDIA.ociManifest, digest: digestOf('later'), size: 5 };
    await pushBlob(fx.api, 'ref/early', EMPTY_CONFIG.bytes);
    const early = await pushManifest(fx.api, 'ref/early', 'sig', imageManifest(descriptor(EMPTY_CONFIG, MEDIA.ociEmpty), [], { artifactType: SIG, subject: future }));
    const res = await fx.api.get(`/v2/ref/early/referrers/${future.digest}`);
    assert.deepEqual((res.body as IndexBody).manifests.map((d) => d.digest), [early.digest]);
  });

  it('lists a referrer once however often it is pushed', async () => {
    const again = await pushManifest(fx.api, 'ref/app', 'sbom-again', sbom.bytes, MEDIA.ociManifest);
    assert.equal(again.digest, sbom.digest);
    const { body } = await referrers();
    assert.equal(body.manifests.filter((d) => d.digest === sbom.digest).length, 1);
  });

  it('keeps referrers to their repository', async () => {
    const other = await pushImage(fx.api, 'ref/other', 'v1');
    assert.equal(other.digest === subject.digest, false);
    const res = await fx.api.get(`/v2/ref/other/referrers/${subject.digest}`);
    assert.deepEqual((res.body as IndexBody).manifests, []);
  });

  it('drops a referrer once its manifest is deleted', async () => {
    await pushBlob(fx.api, 'ref/del', EMPTY_CONFIG.bytes);
    const subj = await pushImage(fx.api, 'ref/del', 'v1');
    const r = await pushManifest(fx.api, 'ref/del', 'sig', imageManifest(descriptor(EMPTY_CONFIG, MEDIA.ociEmpty), [], { artifactType: SIG, subject: { mediaType: MEDIA.ociManifest, digest: subj.digest, size: subj.size } }));
    assert.equal((await fx.api.get(`/v2/ref/del/referrers/${subj.digest}`)).body.manifests.length, 1);
    assert.equal((await fx.api.delete(`/v2/ref/del/manifests/${r.digest}`)).status, 202);
    assert.deepEqual((await fx.api.get(`/v2/ref/del/referrers/${subj.digest}`)).body.manifests, []);
  });

  it('answers DIGEST_INVALID (400) for a malformed digest and NAME_INVALID for a bad name', async () => {
    for (const d of ['sha256:zz', 'latest', `md5:${'a'.repeat(32)}`, '%2e%2e']) {
      expectError(await fx.api.get(`/v2/ref/app/referrers/${d}`), 400, 'DIGEST_INVALID');
    }
    expectError(await fx.api.get(`/v2/Ref/App/referrers/${subject.digest}`), 400, 'NAME_INVALID');
  });

  it('answers UNSUPPORTED (405) for a method referrers does not take', async () => {
    expectError(await fx.api.put(`/v2/ref/app/referrers/${subject.digest}`), 405, 'UNSUPPORTED');
  });
});
