/**
 * Prewarm's scheduling against a fake registry on 127.0.0.1: images share layers, and a worker
 * must not sit on a layer another image is fetching.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Prewarm } from '../../../lib/prewarm/prewarm.ts';
import { parsePlatform } from '../../../lib/prewarm/platforms.ts';

const MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

function blob(text: string): { digest: string; bytes: Buffer } {
  const bytes = Buffer.from(text.repeat(100));
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, bytes };
}

describe('Prewarm scheduling', () => {
  const shared = blob('shared base layer ');
  const own2 = blob('layer of two ');
  const own3 = blob('layer of three ');
  const configs = [blob('config 1 '), blob('config 2 '), blob('config 3 ')];
  const images: Record<string, Array<{ digest: string; bytes: Buffer }>> = {
    'lib/one': [shared],
    'lib/two': [shared, own2],
    'lib/three': [own3],
  };
  const blobs = new Map([shared, own2, own3, ...configs].map((b) => [b.digest, b.bytes]));
  let server: Server;
  let mirror: string;
  let releaseShared: () => void;
  let sharedHeld: Promise<void>;
  const asked: string[] = [];

  beforeEach(async () => {
    asked.length = 0;
    sharedHeld = new Promise((r) => { releaseShared = r; });
    server = createServer((req, res) => {
      const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(req.url ?? '');
      if (!m) return void res.writeHead(404).end();
      const [, name = '', kind, ref = ''] = m;
      asked.push(`${kind} ${name} ${ref.slice(0, 20)}`);
      if (kind === 'manifests') {
        const i = Object.keys(images).indexOf(name);
        const layers = images[name];
        const config = configs[i];
        if (!layers || !config) return void res.writeHead(404).end();
        const body = JSON.stringify({
          schemaVersion: 2,
          mediaType: MANIFEST,
          config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: config.digest, size: config.bytes.length },
          layers: layers.map((l) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: l.digest, size: l.bytes.length })),
        });
        return void res.writeHead(200, { 'content-type': MANIFEST }).end(body);
      }
      const bytes = blobs.get(ref);
      if (!bytes) return void res.writeHead(404).end();
      if (ref === own3.digest) releaseShared();
      // The shared layer is slow: it arrives only once image three's own layer was asked for.
      const held = ref === shared.digest ? sharedHeld : Promise.resolve();
      void held.then(() => res.writeHead(200, { 'content-length': bytes.length }).end(bytes));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    releaseShared();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('moves on to the next image while a layer another image started is still in flight', async function () {
    this.timeout(5000);
    const prewarm = new Prewarm({ mirror, refs: ['lib/one:v1', 'lib/two:v1', 'lib/three:v1'], platforms: [parsePlatform('linux/amd64')], concurrency: 2 });
    const report = await prewarm.run();
    assert.deepEqual(report.images.map((i) => [i.ref, i.ok]), [['lib/one:v1', true], ['lib/two:v1', true], ['lib/three:v1', true]]);
    assert.equal(asked.filter((a) => a.includes(shared.digest.slice(0, 20))).length, 1, 'the shared layer is asked for once');
  });

  it('counts a layer shared by several images once in the total, and in each image', async () => {
    const prewarm = new Prewarm({ mirror, refs: ['lib/one:v1', 'lib/two:v1', 'lib/three:v1'], platforms: [parsePlatform('linux/amd64')], concurrency: 3 });
    const report = await prewarm.run();
    const distinct = [...blobs.values()].reduce((n, b) => n + b.length, 0);
    assert.equal(report.bytes, distinct);
    const two = report.images.find((i) => i.ref === 'lib/two:v1');
    assert.equal(two?.bytes, (configs[1]?.bytes.length ?? 0) + shared.bytes.length + own2.bytes.length);
    assert.equal(two?.blobs, 3);
  });
});
