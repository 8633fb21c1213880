/**
 * The hostile mix against a real mirror process (issue 13.4): slow headers and bodies, oversized
 * and deep manifests, an upload-session flood, path traversal, bad ranges and digests and 500
 * concurrent connections, to the compiled mirror (what is deployed; built when dist/ is not
 * current). Asserts no 5xx, no crash, peak RSS under 200 MB, nothing written outside the data
 * dir, the flood swept while running, and a push and pull still served after.
 * Deadlines are shortened by config (2 s headers, 1 s body window, 6 s idle sessions) so the whole
 * mix takes seconds; what it sent and got is printed.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, Agent } from 'node:http';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { digestOf } from '../../lib/oci/digest.ts';
import { REPO_ROOT, ensureBuilt, ferryArgs } from '../helpers/ferry-entry.ts';
import { freePort, startProcess, waitFor, type ManagedProcess } from '../helpers/processes.ts';
import { blob, descriptor, imageManifest } from '../api/fixture.ts';

const MiB = 1024 * 1024;
/** Issue 13's bound on the mirror as deployed: the compiled tree (tsx's loader alone adds ~40 MB). */
const RSS_LIMIT = 200 * MiB;
const mb = (bytes: number): string => `${(bytes / MiB).toFixed(0)} MB`;

interface Answer {
  status: number;
  body: Buffer;
}

describe('e2e: hostile mix against a mirror process', function () {
  // A build of dist/ when it is not current (as after any change to the sources) takes 10-45 s.
  this.timeout(180_000);
  let root: string;
  let dataDir: string;
  let port: number;
  let mirror: ManagedProcess;
  /** Every answered status, by request kind. */
  const tally = new Map<string, Map<number, number>>();
  let cut = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });

  const count = (kind: string, status: number): void => {
    const m = tally.get(kind) ?? new Map<number, number>();
    m.set(status, (m.get(status) ?? 0) + 1);
    tally.set(kind, m);
  };

  function send(kind: string, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => {
          count(kind, res.statusCode ?? 0);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
        });
        res.once('error', reject);
      });
      req.once('error', (e) => reject(new Error(`${kind} ${method} ${path}: ${e.message}`)));
      req.end(body);
    });
  }

  /** A raw connection that sends `head` (and then whatever `feed` writes); resolves once it closes, with the ms it was open. */
  function rawConnection(head: string, feed?: (s: Socket) => Promise<void>): Promise<number> {
    return new Promise((resolve) => {
      const started = Date.now();
      const s = connect(port, '127.0.0.1');
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      s.on('error', () => undefined);
      s.once('close', () => {
        const answer = Buffer.concat(parts).toString('latin1');
        const status = /^HTTP\/1\.1 (\d{3})/.exec(answer);
        if (status) count('raw', Number(status[1]));
        else cut++;
        resolve(Date.now() - started);
      });
      s.once('connect', () => {
        s.write(head);
        void feed?.(s).catch(() => undefined);
      });
    });
  }

  function vmStatus(field: 'VmRSS' | 'VmHWM'): Promise<number> {
    return readFile(`/proc/${mirror.pid}/status`, 'utf8').then((t) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(t)?.[1]) * 1024);
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-hostile-mix-'));
    dataDir = join(root, 'data');
    await mkdir(dataDir);
    port = await freePort();
    await ensureBuilt();
    // No upstreams: every name is local, nothing leaves 127.0.0.1.
    await writeFile(join(root, 'mirror.json'), JSON.stringify({
      listen: `127.0.0.1:${port}`,
      dataDir: './data',
      limits: { headersTimeoutSeconds: 2, bodyTimeoutSeconds: 1, uploadSessionsPerClient: 20, uploadSessionsPerRepository: 50, uploadIdleMinutes: 0.1 },
    }));
    mirror = await startProcess({
      name: 'ferry-mirror-hostile',
      command: process.execPath,
      args: [...ferryArgs(true), 'mirror', '--config', join(root, 'mirror.json')],
      cwd: REPO_ROOT,
      ready: { url: `http://127.0.0.1:${port}/v2/`, statuses: [200] },
      readyTimeoutMs: 30_000,
    });
  });

  after(async () => {
    agent.destroy();
    await mirror?.stop(3000);
    await rm(root, { recursive: true, force: true });
  });

  /**
   * One round of the mix (`heaviest`: only the oversized and deep manifests and the flood, the
   * requests that cost memory); ends once the mirror has swept what it left and still serves a
   * push and a pull.
   */
  async function round(heaviest = false): Promise<void> {
    const cfg = blob('{"architecture":"amd64","os":"linux"}');
    const cfgPushed = await send('setup', 'POST', `/v2/mix/app/blobs/uploads/?digest=${cfg.digest}`, { 'Content-Type': 'application/octet-stream' }, cfg.bytes);
    assert.equal(cfgPushed.status, 201);
    const manifest = (extra: Record<string, unknown> = {}): string => JSON.stringify(imageManifest(descriptor(cfg, MEDIA.ociConfig), [], extra));

    // 1. 500 concurrent connections: 250 whose headers never complete, 250 ordinary requests.
    const connections = heaviest ? 0 : 250;
    const slowloris = Array.from({ length: connections }, () => rawConnection('GET /v2/ HTTP/1.1\r\nHost: x\r\n'));
    const ordinary = Array.from({ length: connections }, (_, i) =>
      rawConnection(`${['GET /v2/', 'GET /v2/mix/app/manifests/none', `HEAD /v2/mix/app/blobs/${cfg.digest}`, 'GET /v2/_catalog'][i % 4]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));

    // 2. Slow bodies: PATCHes dribbling a byte every 200 ms, manifest PUTs stalled after 10 bytes.
    const uploadPath = async (): Promise<string> => {
      const r = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v2/mix/slow/blobs/uploads/', agent }, (res) => {
          count('setup', res.statusCode ?? 0);
          res.resume();
          resolve(String(res.headers.location));
        });
        req.once('error', reject);
        req.end();
      });
      return r;
    };
    const slowBodies = heaviest ? 0 : 10;
    const dribbling = await Promise.all(Array.from({ length: slowBodies }, async () => {
      const path = await uploadPath();
      // (In an object: an async function returning the promise itself would wait for it.)
      return { closed: rawConnection(`PATCH ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n`, async (s) => {
        while (!s.destroyed) {
          s.write('x');
          await new Promise((r) => setTimeout(r, 200));
        }
      }) };
    }));
    const dribblers = dribbling.map((d) => d.closed);
    const stalled = Array.from({ length: slowBodies }, () => rawConnection(`PUT /v2/mix/app/manifests/stalled HTTP/1.1\r\nHost: x\r\nContent-Type: ${MEDIA.ociManifest}\r\nContent-Length: 5000\r\n\r\n{"schemaV`));

    // 3. Oversized manifests: 96 MiB chunked, sent whole before reading; and declared 1 GiB.
    const oversized = Array.from({ length: 3 }, () => rawConnection(
      `PUT /v2/mix/app/manifests/huge HTTP/1.1\r\nHost: x\r\nContent-Type: ${MEDIA.ociManifest}\r\nTransfer-Encoding: chunked\r\n\r\n`,
      async (s) => {
        const framed = Buffer.concat([Buffer.from(`${MiB.toString(16)}\r\n`), Buffer.alloc(MiB, 0x20), Buffer.from('\r\n')]);
        for (let sent = 0; sent < 96 && !s.destroyed; sent++) if (!s.write(framed)) await new Promise((r) => s.once('drain', r));
        s.end('0\r\n\r\n');
      },
    ));
    // (A raw connection each: the body is never sent, so the connection cannot serve another request.)
    const declared = Array.from({ length: 5 }, () => rawConnection(
      `PUT /v2/mix/app/manifests/declared HTTP/1.1\r\nHost: x\r\nContent-Type: ${MEDIA.ociManifest}\r\nContent-Length: ${1024 * MiB}\r\n\r\n`,
      async (s) => {
        await once(s, 'data');
        s.destroy();
      },
    ));

    // 4. Deep manifests: a key nested 1,000,000 deep, and just past the bound.
    const deep = manifest({ x: 0 }).replace('"x":0', `"x":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`);
    const deepAnswers = await Promise.all(Array.from({ length: 5 }, () => send('deep', 'PUT', '/v2/mix/app/manifests/deep', { 'Content-Type': MEDIA.ociManifest }, deep)));
    for (const a of deepAnswers) assert.equal(a.status, 400);

    // Bad chunks (before the flood takes this client's share of sessions).
    const chunkAt = await uploadPath();
    // A chunk whose Content-Range contradicts where the upload stands, and one that lies about its length.
    const badRange = await send('ranges-digests', 'PATCH', chunkAt, { 'Content-Range': '100-199', 'Content-Type': 'application/octet-stream' }, 'x'.repeat(100));
    assert.equal(badRange.status, 416);
    const lying = await send('ranges-digests', 'PATCH', chunkAt, { 'Content-Range': '0-9', 'Content-Type': 'application/octet-stream' }, 'x'.repeat(5));
    assert.ok(lying.status === 400 || lying.status === 416, `lying chunk: ${lying.status}`);
    const wrongDigest = await send('ranges-digests', 'PUT', `${chunkAt}?digest=${digestOf('nope')}`, { 'Content-Type': 'application/octet-stream' }, 'abc');
    assert.equal(wrongDigest.status, 400);

    // 5. Session flood: 300 POSTs from one client.
    const flood = await Promise.all(Array.from({ length: 300 }, (_, i) => send('flood', 'POST', `/v2/mix/flood${i % 3}/blobs/uploads/`)));
    const opened = flood.filter((a) => a.status === 202).length;
    assert.ok(opened <= 20, `${opened} sessions opened past the per-client limit`);
    assert.ok(flood.filter((a) => a.status === 429).length >= 280);

    // 6. Path traversal: in names, digests, upload ids, mount sources, encoded and not.
    const escape = '..%2f..%2fescaped';
    const traversal: Array<[string, string, string?]> = [
      ['GET', '/v2/../../etc/passwd'],
      ['GET', `/v2/${escape}/manifests/latest`],
      ['PUT', `/v2/${escape}/manifests/latest`, manifest()],
      ['PUT', '/v2/mix/app/manifests/..%2f..%2f..%2fescaped', manifest()],
      ['GET', '/v2/mix/app/blobs/sha256:..%2f..%2f..%2fescaped'],
      ['GET', '/v2/mix/app/blobs/sha256:../../../escaped'],
      ['POST', `/v2/${escape}/blobs/uploads/`],
      ['POST', `/v2/mix/app/blobs/uploads/?mount=${cfg.digest}&from=${escape}`],
      ['PATCH', '/v2/mix/app/blobs/uploads/..%2f..%2f..%2fescaped', 'x'],
      ['PUT', `/v2/mix/app/blobs/uploads/..%2f..%2fescaped?digest=${digestOf('x')}`, 'x'],
      ['DELETE', '/v2/mix/app/blobs/uploads/..%2f..%2f..%2fdata'],
      ['GET', '/v2/mix/%2e%2e/%2e%2e/tags/list'],
      ['GET', `/v2/mix/app/referrers/sha256:..%2f..%2fescaped`],
    ];
    for (const [method, path, body] of heaviest ? [] : traversal) {
      const a = await send('traversal', method, path, body ? { 'Content-Type': MEDIA.ociManifest } : {}, body);
      assert.ok(a.status < 500, `${method} ${path}: ${a.status}`);
    }

    // 7. Bad ranges and digests.
    const ranged: Array<[string, string, Record<string, string>?, string?]> = [
      ['GET', `/v2/mix/app/blobs/${cfg.digest}`, { Range: 'bytes=999999-' }],
      ['GET', `/v2/mix/app/blobs/${cfg.digest}`, { Range: 'bytes=5-2' }],
      ['GET', `/v2/mix/app/blobs/${cfg.digest}`, { Range: 'bytes=-0' }],
      ['GET', `/v2/mix/app/blobs/${cfg.digest}`, { Range: 'bytes=0-1,3-4,5-6' }],
      ['GET', `/v2/mix/app/blobs/${cfg.digest}`, { Range: 'pages=1-2' }],
      ['GET', `/v2/mix/app/blobs/${cfg.digest}`, { Range: `bytes=0-${'9'.repeat(400)}` }],
      ['GET', '/v2/mix/app/blobs/sha256:zz'],
      ['GET', `/v2/mix/app/blobs/md5:${'0'.repeat(32)}`],
      ['GET', `/v2/mix/app/blobs/sha256:${'a'.repeat(63)}`],
      ['GET', `/v2/mix/app/blobs/sha512:${'a'.repeat(128)}`],
      ['POST', `/v2/mix/app/blobs/uploads/?digest=${digestOf('other')}`, { 'Content-Type': 'application/octet-stream' }, 'not other'],
      ['POST', '/v2/mix/app/blobs/uploads/?digest=sha256:nothex', {}, 'x'],
      ['PUT', `/v2/mix/app/manifests/${digestOf('not this manifest')}`, { 'Content-Type': MEDIA.ociManifest }, manifest()],
      ['PUT', '/v2/mix/app/manifests/bad', { 'Content-Type': MEDIA.ociManifest }, '{"schemaVersion":2,"config":{"digest":"sha256:../x","size":-1}}'],
      ['PUT', '/v2/mix/app/manifests/bad', { 'Content-Type': MEDIA.ociManifest }, '\u0000\u00ff{'],
      ['GET', '/v2/mix/app/tags/list?n=-1'],
      ['GET', '/v2/mix/app/tags/list?n=99999999999999999999'],
    ];
    for (const [method, path, headers, body] of heaviest ? [] : ranged) {
      const a = await send('ranges-digests', method, path, headers, body);
      assert.ok(a.status >= 400 && a.status < 500 || a.status === 200 || a.status === 206, `${method} ${path} ${JSON.stringify(headers)}: ${a.status}`);
    }

    await Promise.all([...ordinary, ...oversized, ...declared]);
    // Cut by the configured deadlines (2 s for headers, a 1 s body window), not Node's or the defaults.
    const slowest = (ms: number[]): number => Math.max(0, ...ms);
    assert.ok(slowest(await Promise.all(slowloris)) < 2000 + 3000, 'slow headers cut late');
    assert.ok(slowest(await Promise.all([...dribblers, ...stalled])) < 2 * 1000 + 3000, 'slow bodies cut late');

    // No crash; the flood and the cut sessions are swept while running (idle after 6 s).
    assert.equal(mirror.child.exitCode, null, 'the mirror exited');
    await waitFor(async () => (await readdir(join(dataDir, 'uploads'))).length === 0, 20_000, 'idle upload sessions swept');

    // Still serves: a push and a pull.
    const layer = blob(Buffer.alloc(64 * 1024, 3));
    assert.equal((await send('after', 'POST', `/v2/mix/after/blobs/uploads/?digest=${layer.digest}`, { 'Content-Type': 'application/octet-stream' }, layer.bytes)).status, 201);
    assert.equal((await send('after', 'POST', `/v2/mix/after/blobs/uploads/?digest=${cfg.digest}`, { 'Content-Type': 'application/octet-stream' }, cfg.bytes)).status, 201);
    const m = JSON.stringify(imageManifest(descriptor(cfg, MEDIA.ociConfig), [descriptor(layer, MEDIA.ociLayerGzip)]));
    assert.equal((await send('after', 'PUT', '/v2/mix/after/manifests/v1', { 'Content-Type': MEDIA.ociManifest }, m)).status, 201);
    const pulled = await send('after', 'GET', `/v2/mix/after/blobs/${layer.digest}`);
    assert.ok(pulled.body.equals(layer.bytes));
  }

  it('answers the mix, then its heaviest requests again, without a 5xx, within the RSS bound, writing only in its data dir', async () => {
    const rssBefore = await vmStatus('VmRSS');
    await round();
    const rssRound1 = await vmStatus('VmRSS');
    await round(true);
    const rssAfter = await vmStatus('VmRSS');
    const peak = await vmStatus('VmHWM');
    const lines = [...tally].map(([kind, statuses]) => `${kind}: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}x${n}`).join(' ')}`);
    console.log(`      hostile mix: ${lines.join('; ')}; cut without answer: ${cut}`);
    console.log(`      RSS before ${mb(rssBefore)}, after round 1 ${mb(rssRound1)}, after the heaviest again ${mb(rssAfter)}, peak ${mb(peak)} (growth to peak ${mb(peak - rssBefore)})`);

    const fivexx = [...tally].flatMap(([kind, statuses]) => [...statuses].filter(([s]) => s >= 500).map(([s, n]) => `${kind} ${s}x${n}`));
    assert.deepEqual(fivexx, [], 'answers of 5xx');
    assert.ok(peak < RSS_LIMIT, `peak RSS ${mb(peak)}`);
    // Nothing outside the data dir: the root holds only what the test put there.
    assert.deepEqual((await readdir(root)).sort(), ['data', 'mirror.json']);
    for (const outside of [join(tmpdir(), 'escaped'), '/escaped', join(REPO_ROOT, 'escaped')]) {
      await assert.rejects(readdir(outside), { code: 'ENOENT' }, `${outside} was written`);
    }
    // Slow headers get Node's 408; slow bodies (10 dribbling, 10 stalled a round) are cut unanswered.
    assert.equal(tally.get('raw')?.get(408), 250);
    assert.equal(cut, 20);
  });
});
