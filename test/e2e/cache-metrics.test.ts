/** /metrics counts pull-through cache misses on a cold pull and hits on a warm one. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage, skopeoCopy } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

async function cacheCounters(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^ferry_cache_requests_total\{kind="(\w+)",result="(\w+)"\} (\d+)/gm)) out[`${m[1]}:${m[2]}`] = Number(m[3]);
  return out;
}

describe('cache hit and miss metrics', function () {
  this.timeout(60_000);
  let upstream: ReferenceRegistry;
  let mirror: TestMirror;
  let image: BuiltImage;
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'ferry-metrics-'));
    upstream = await startReferenceRegistry({ name: 'metrics-upstream' });
    image = await buildImage({ seed: 'metrics', layers: [1 << 20, 2048] });
    await pushImage(image, upstream.host, 'kolla/x', 'v1');
    mirror = await startTestMirror({ upstreams: { up: { url: upstream.url } }, rewrite: [{ match: 'kolla/*', local: 'lokolla/*', upstream: 'up' }] });
  });

  after(async () => {
    await mirror?.stop();
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('counts a cold pull as misses and a warm pull as hits', async () => {
    const blobs = 1 + image.layers.length;
    await skopeoCopy(`docker://${mirror.host}/kolla/x:v1`, `dir:${join(scratch, 'cold')}`);
    const cold = await cacheCounters(mirror.url);
    assert.equal(cold['manifest:miss'], 1);
    assert.equal(cold['blob:miss'], blobs);
    await skopeoCopy(`docker://${mirror.host}/kolla/x:v1`, `dir:${join(scratch, 'warm')}`);
    const warm = await cacheCounters(mirror.url);
    assert.equal(warm['manifest:miss'], 1);
    assert.equal(warm['blob:miss'], blobs);
    assert.ok((warm['manifest:hit'] ?? 0) >= 1);
    assert.equal(warm['blob:hit'], blobs);
  });
});
