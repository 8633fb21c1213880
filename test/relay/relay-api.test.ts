/**
 * The relay's HTTP surface against the reference registry (token auth) behind a fault proxy:
 * tokens, the allowlist, pull-only, byte ranges of a blob still being fetched, chunk digests,
 * the failure slow-down, token file rotation and the TLS reload.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Agent } from 'undici';
import { FaultProxy } from '../fault-proxy/proxy.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTokenServer, type TokenServer } from '../helpers/token-server.ts';
import { call, errorCode, issueServerCert, makeTlsFiles, startTestRelay, type TestRelay, type TlsFiles } from './fixture.ts';
import { generateToken } from '../../lib/relay/tokens.ts';
import { StorePaths } from '../../lib/storage/paths.ts';

const MiB = 1 << 20;
const TOKEN_A = generateToken();
const TOKEN_B = generateToken();
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('ferry relay: the authenticated, pull-only, range-serving front', function () {
  this.timeout(60_000);
  let tokens: TokenServer;
  let registry: ReferenceRegistry;
  let proxy: FaultProxy;
  let relay: TestRelay;
  let image: BuiltImage;
  let big: BuiltImage['layers'][number];
  const name = 'docker.io/kolla/relay-api';

  before(async () => {
    tokens = await startTokenServer({ users: { pusher: 'pw' }, anonymousPull: true });
    registry = await startReferenceRegistry({ name: 'relay-api-registry', token: { realm: tokens.realm, issuer: tokens.issuer, certPath: tokens.certPath } });
    image = await buildImage({ seed: 'relay-api', layers: [24 * MiB, 12 * MiB, 64 * 1024] });
    big = image.layers[0]!;
    await pushImage(image, registry.host, 'kolla/relay-api', '1', { destCreds: { username: 'pusher', password: 'pw' } });
    proxy = new FaultProxy({ target: registry.host, seed: 3 });
    await proxy.listen();
    relay = await startTestRelay({
      upstreams: {
        hub: { url: proxy.url, hosts: ['docker.io'] },
        quay: { url: 'http://127.0.0.1:9', hosts: ['quay.io'] },
      },
      relay: { tokens: [TOKEN_A, TOKEN_B], allow: ['hub'], chunkBytes: MiB },
    }, { deps: { throttle: { baseMs: 60, maxDelayMs: 240 } } });
  });

  after(async () => {
    await relay?.stop();
    await proxy?.close();
    await registry?.stop();
    await tokens?.close();
  });

  const v2 = (path: string): string => `${relay.url}/v2/${path}`;

  describe('tokens', () => {
    for (const [what, token] of [['no token', undefined], ['a wrong token', generateToken()], ['a token of another length', 'short'], ['an empty token', '']] as const) {
      it(`answers 401 UNAUTHORIZED with the Bearer challenge and nothing of the upstream to ${what}`, async () => {
        const connections = proxy.stats.connections;
        for (const path of ['', `${name}/manifests/1`, `${name}/blobs/${big.digest}`, `${name}/tags/list`, `${name}/blobs/${big.digest}/chunks`]) {
          const a = await call(v2(path), token === undefined ? {} : { token });
          assert.equal(a.status, 401, path);
          assert.equal(a.headers['www-authenticate'], 'Bearer realm="ferry-relay"');
          assert.equal(errorCode(a), 'UNAUTHORIZED');
          assert.equal(a.headers['docker-content-digest'], undefined);
          assert.ok(!a.body.toString().includes('kolla'), 'the body names nothing it was asked about');
        }
        assert.equal(proxy.stats.connections, connections, 'no request reached the upstream');
      });
    }

    it('accepts every configured token, so one can be rotated while the other works', async () => {
      for (const token of [TOKEN_A, TOKEN_B]) {
        const a = await call(v2(''), { token });
        assert.equal(a.status, 200);
        assert.equal(a.headers['docker-distribution-api-version'], 'registry/2.0');
      }
    });

    it('refuses a Basic authorization carrying a valid token as its password', async () => {
      const basic = Buffer.from(`x:${TOKEN_A}`).toString('base64');
      const a = await call(v2(''), { headers: { authorization: `Basic ${basic}` } });
      assert.equal(a.status, 401);
    });

    it('answers repeated failures from one address later and later, valid tokens at once', async () => {
      const timed = async (token?: string): Promise<number> => {
        const t0 = performance.now();
        await call(v2(''), token === undefined ? {} : { token });
        return performance.now() - t0;
      };
      // Earlier tests failed from this address too: the score is already up, and only grows.
      const times: number[] = [];
      for (let i = 0; i < 4; i++) times.push(await timed('x'.repeat(20)));
      assert.ok(times[3]! >= 200, `the 4th failure in a row waited ${times[3]} ms (cap 240)`);
      assert.ok(await timed(TOKEN_A) < 150, 'a valid token is not slowed down');
    });
  });

  describe('allowlist and pull-only', () => {
    it('answers DENIED for a host configured but not allowed, without contacting it', async () => {
      const a = await call(v2('quay.io/openstack.kolla/nova-api/manifests/2025.1'), { token: TOKEN_A });
      assert.equal(a.status, 403);
      assert.equal(errorCode(a), 'DENIED');
    });

    it('answers DENIED for a host it does not know: never an open proxy', async () => {
      const connections = proxy.stats.connections;
      for (const path of ['evil.example.com/x/manifests/latest', `127.0.0.1/x/blobs/${big.digest}`, 'localhost/x/tags/list']) {
        const a = await call(v2(path), { token: TOKEN_A });
        assert.equal(a.status, 403, path);
        assert.equal(errorCode(a), 'DENIED');
      }
      assert.equal(proxy.stats.connections, connections);
    });

    it('answers DENIED for a name without a host when no default upstream is configured', async () => {
      const a = await call(v2('kolla/relay-api/manifests/1'), { token: TOKEN_A });
      assert.equal(a.status, 403);
      assert.equal(errorCode(a), 'DENIED');
    });

    it('answers UNSUPPORTED (405) to every write and to listings', async () => {
      const cases: Array<[string, string]> = [
        ['PUT', `${name}/manifests/evil`], ['DELETE', `${name}/manifests/${image.manifestDigest}`], ['POST', `${name}/blobs/uploads/`],
        ['PATCH', `${name}/blobs/uploads/0c4b2a5e-3b7e-4b8e-9a51-9d1c6a3e1f00`], ['DELETE', `${name}/blobs/${big.digest}`], ['GET', '_catalog'],
        ['GET', `${name}/referrers/${image.manifestDigest}`],
      ];
      for (const [method, path] of cases) {
        const a = await call(v2(path), { token: TOKEN_A, method: method as 'GET', ...(method === 'GET' || method === 'DELETE' ? {} : { body: '{}' }) });
        assert.equal(a.status, 405, `${method} ${path}`);
        assert.equal(errorCode(a), 'UNSUPPORTED');
      }
    });
  });

  describe('pull-through', () => {
    it('serves the manifest byte for byte and the tags under the host-prefixed name', async () => {
      const m = await call(v2(`${name}/manifests/1`), { token: TOKEN_A });
      assert.equal(m.status, 200);
      assert.ok(m.body.equals(image.manifest));
      assert.equal(m.headers['docker-content-digest'], image.manifestDigest);
      const t = await call(v2(`${name}/tags/list`), { token: TOKEN_A });
      assert.deepEqual(JSON.parse(t.body.toString()), { name, tags: ['1'] });
    });

    it('answers chunk digests BLOB_UNKNOWN for a blob it neither holds nor fetches', async () => {
      const a = await call(v2(`${name}/blobs/${big.digest}/chunks`), { token: TOKEN_A });
      assert.equal(a.status, 404);
      assert.equal(errorCode(a), 'BLOB_UNKNOWN');
    });

    it('answers a range of a blob still being fetched with 206, its Content-Range and its bytes', async () => {
      proxy.setFaults({ rateBytesPerSec: 8 * MiB });
      try {
        const start = 20 * MiB + 123;
        const end = 22 * MiB;
        const a = await call(v2(`${name}/blobs/${big.digest}`), { token: TOKEN_A, headers: { range: `bytes=${start}-${end}` } });
        const transfer = relay.relay.transfers.get(big.digest);
        assert.equal(a.status, 206);
        assert.equal(a.headers['content-range'], `bytes ${start}-${end}/${big.size}`);
        assert.equal(Number(a.headers['content-length']), end - start + 1);
        const whole = await readFile(big.path);
        assert.ok(a.body.equals(whole.subarray(start, end + 1)));
        assert.ok(transfer, 'the relay was still fetching when the range was complete');
        const head = await call(v2(`${name}/blobs/${big.digest}`), { token: TOKEN_A, method: 'HEAD' });
        assert.equal(Number(head.headers['content-length']), big.size);
      } finally {
        proxy.clearFaults();
      }
    });

    it('lists per-chunk digests of a blob it holds, once computed kept beside the store', async () => {
      const a = await call(v2(`${name}/blobs/${big.digest}/chunks`), { token: TOKEN_A });
      assert.equal(a.status, 200, a.body.toString());
      const list = JSON.parse(a.body.toString()) as { chunkSize: number; digests: string[] };
      const whole = await readFile(big.path);
      assert.equal(list.chunkSize, MiB);
      assert.equal(list.digests.length, Math.ceil(big.size / MiB));
      list.digests.forEach((d, i) => assert.equal(d, sha256(whole.subarray(i * MiB, (i + 1) * MiB)), `chunk ${i}`));
      await stat(new StorePaths(relay.dataDir).sidecar(big.digest, `chunks-${MiB}.json`));
      const other = await call(v2(`${name}/blobs/${big.digest}/chunks?size=${4 * MiB}`), { token: TOKEN_A });
      assert.equal((JSON.parse(other.body.toString()) as { digests: string[] }).digests.length, Math.ceil(big.size / (4 * MiB)));
      const bad = await call(v2(`${name}/blobs/${big.digest}/chunks?size=1000`), { token: TOKEN_A });
      assert.equal(bad.status, 400);
    });

    it('lists the chunks of a blob still being fetched once the fetch completes', async () => {
      const second = image.layers[1]!;
      proxy.setFaults({ rateBytesPerSec: 8 * MiB });
      try {
        const head = await call(v2(`${name}/blobs/${second.digest}`), { token: TOKEN_A, method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.ok(relay.relay.transfers.get(second.digest), 'the HEAD started the fetch and it runs');
        const a = await call(v2(`${name}/blobs/${second.digest}/chunks`), { token: TOKEN_A });
        assert.equal(a.status, 200);
        assert.equal((JSON.parse(a.body.toString()) as { digests: string[] }).digests.length, Math.ceil(second.size / MiB));
        assert.equal(relay.relay.transfers.get(second.digest), undefined);
      } finally {
        proxy.clearFaults();
      }
    });

    it('fetched the blob from upstream once for all of that', async () => {
      assert.equal(relay.relay.cache.has(big.digest), true);
      const whole = await call(v2(`${name}/blobs/${big.digest}`), { token: TOKEN_A });
      assert.equal(sha256(whole.body), big.digest);
      const both = big.size + image.layers[1]!.size;
      assert.ok(proxy.stats.bytesToClient < both * 1.1, `upstream sent ${proxy.stats.bytesToClient} bytes for ${both} bytes of blobs`);
    });

    it('serves a blob it holds only under names whose upstream repository has it, chunk lists too', async () => {
      const other = 'docker.io/kolla/relay-other';
      for (const [method, path] of [['GET', `${other}/blobs/${big.digest}`], ['HEAD', `${other}/blobs/${big.digest}`], ['GET', `${other}/blobs/${big.digest}/chunks`]] as const) {
        const a = await call(v2(path), { token: TOKEN_A, method });
        assert.equal(a.status, 404, `${method} ${path}`);
        if (method === 'GET') assert.equal(errorCode(a), 'BLOB_UNKNOWN');
      }
      assert.equal(relay.relay.cache.has(big.digest), true, 'still held for its own repository');
    });
  });

  describe('ops', () => {
    it('keeps /healthz and /readyz open, and /metrics and /status.json behind the token', async () => {
      for (const path of ['/healthz', '/readyz']) {
        const a = await call(`${relay.url}${path}`);
        assert.equal(a.status, 200, path);
      }
      for (const path of ['/metrics', '/status.json']) {
        const refused = await call(`${relay.url}${path}`);
        assert.equal(refused.status, 401, path);
        assert.equal(errorCode(refused), 'UNAUTHORIZED');
        assert.doesNotMatch(refused.body.toString(), /ferry_|transfers/);
        assert.equal((await call(`${relay.url}${path}`, { token: generateToken() })).status, 401, `${path} with an unknown token`);
      }
    });

    it('counts what it served and fetched: /metrics for Prometheus, /status.json for people', async () => {
      const status = await call(`${relay.url}/status.json`, { token: TOKEN_B });
      assert.equal(status.status, 200);
      const doc = JSON.parse(status.body.toString()) as { version: string; store: { bytes: number } | undefined; upstreams: Array<{ name: string; ok?: boolean; lastOkAt?: number }> };
      assert.match(doc.version, /^\d+\.\d+\.\d+/);
      assert.deepEqual(doc.upstreams.map((u) => u.name).sort(), ['hub', 'quay']);
      // Health from the relay's own upstream calls (the first ping is a minute away), as on the mirror;
      // the upstream it does not allow was never called.
      const hub = doc.upstreams.find((u) => u.name === 'hub');
      assert.equal(hub?.ok, true);
      assert.ok(hub?.lastOkAt !== undefined);
      assert.equal(doc.upstreams.find((u) => u.name === 'quay')?.ok, undefined);
      const metrics = await call(`${relay.url}/metrics`, { token: TOKEN_A });
      assert.equal(metrics.status, 200);
      const text = metrics.body.toString();
      const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
      assert.ok(value(/^ferry_http_requests_total\{[^}]*route="blob"[^}]*status="200"[^}]*\} (\d+)/m) >= 1, text);
      assert.ok(value(/^ferry_transfers_total\{result="complete"\} (\d+)/m) >= 2, text);
      assert.ok(value(/^ferry_upstream_bytes_total\{upstream="hub"\} (\d+)/m) >= big.size, text);
      assert.ok(value(/^ferry_http_requests_total\{[^}]*status="401"[^}]*\} (\d+)/m) >= 1, 'refused requests are counted too');
    });
  });
});

describe('ferry relay: token file and TLS reload', function () {
  this.timeout(60_000);
  let dir: string;
  let tls: TlsFiles;
  let relay: TestRelay | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-relay-tls-'));
    tls = await makeTlsFiles(dir, 'first');
  });
  after(async () => {
    await relay?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const peerCn = (port: number): Promise<string> => new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca: [readFileSync(tls.caFile, 'utf8')], servername: 'localhost' }, () => {
      const cn: string | string[] | undefined = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(String(Array.isArray(cn) ? cn[0] : cn));
    });
    s.on('error', reject);
  });

  it('re-reads the token file when it changes, and refuses to start without any token', async () => {
    const tokenFile = join(dir, 'tokens');
    const first = generateToken();
    const second = generateToken();
    await writeFile(tokenFile, `# relay tokens\n${first}\n`);
    relay = await startTestRelay({
      upstreams: { hub: { url: 'http://127.0.0.1:9' } },
      tls: { cert: tls.certFile, key: tls.keyFile },
      relay: { tokenFile },
    });
    const dispatcher = new Agent({ connect: { ca: await readFile(tls.caFile, 'utf8') } });
    try {
      assert.equal((await call(`${relay.url}/v2/`, { token: first, dispatcher })).status, 200);
      await writeFile(tokenFile, `${second}\n`);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await call(`${relay.url}/v2/`, { token: first, dispatcher })).status, 401);
      assert.equal((await call(`${relay.url}/v2/`, { token: second, dispatcher })).status, 200);
    } finally {
      await dispatcher.close();
    }
    await assert.rejects(startTestRelay({ upstreams: { hub: { url: 'http://127.0.0.1:9' } } }), /no token/);
  });

  it('serves a renewed certificate after reloadTls (SIGHUP) without a restart', async () => {
    assert.ok(relay);
    assert.equal(await peerCn(relay.port), 'first');
    await issueServerCert(tls, 'second');
    assert.equal(relay.relay.reloadTls(), true);
    assert.equal(await peerCn(relay.port), 'second');
  });

  it('keeps serving its certificate when a reload finds the key unreadable (the mirror\'s reload, written once)', async () => {
    assert.ok(relay);
    await rename(tls.keyFile, `${tls.keyFile}.away`);
    try {
      assert.equal(relay.relay.reloadTls(), false);
      assert.equal(await peerCn(relay.port), 'second');
    } finally {
      await rename(`${tls.keyFile}.away`, tls.keyFile);
    }
  });
});
