/**
 * Upstream failures reach the client with the upstream's own reason (issue 16.4), through a real
 * mirror -> relay chain and the real dockerd: the relay's DENIED text, a relay that is down, a
 * relay whose certificate the mirror does not trust. Docker prints only the status line of some
 * 5xx answers, so the reason is in the reason phrase as well as in the JSON body.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateToken } from '../../lib/relay/tokens.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { call, makeTlsFiles, startTestRelay, type TestRelay, type TlsFiles } from '../relay/fixture.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';

const TOKEN = generateToken();

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function message(body: Buffer): string {
  return (JSON.parse(body.toString('utf8')) as { errors: Array<{ message: string }> }).errors[0]?.message ?? '';
}

describe('upstream failures reach clients with the upstream\'s own reason', function () {
  this.timeout(120_000);
  let tlsDir: string;
  let tls: TlsFiles;
  let relay: TestRelay;
  const mirrors: TestMirror[] = [];
  let dockerd: Dockerd;
  let denied: TestMirror;
  let down: TestMirror;
  let untrusted: TestMirror;

  before(async () => {
    tlsDir = await mkdtemp(join(tmpdir(), 'ferry-reasons-tls-'));
    tls = await makeTlsFiles(tlsDir);
    // The relay serves docker.io only (a registry it never reaches in this test).
    relay = await startTestRelay({
      tls: { cert: tls.certFile, key: tls.keyFile },
      upstreams: { hub: { url: `http://127.0.0.1:${await closedPort()}`, hosts: ['docker.io'] } },
      relay: { tokens: [TOKEN] },
    });
    const start = async (upstream: Record<string, unknown>): Promise<TestMirror> => {
      const m = await startTestMirror({ upstreams: { relay: { kind: 'relay', token: TOKEN, retries: 0, ...upstream } as never }, defaultUpstream: 'relay' });
      mirrors.push(m);
      return m;
    };
    // The mirror sends quay.io names to the relay, which serves docker.io only.
    denied = await start({ url: relay.url, caFile: tls.caFile, hosts: ['docker.io', 'quay.io'] });
    down = await start({ url: `http://127.0.0.1:${await closedPort()}` });
    untrusted = await start({ url: relay.url });
    dockerd = await startDockerd({ name: 'dockerd-reasons' });
  });
  after(async () => {
    await dockerd?.stop();
    for (const m of mirrors) await m.stop();
    await relay?.stop();
    await rm(tlsDir, { recursive: true, force: true });
  });

  it('passes the relay\'s DENIED text through the mirror', async () => {
    const a = await call(`${denied.url}/v2/quay.io/team/app/manifests/1`);
    assert.equal(a.status, 403);
    assert.match(message(a.body), /registry host quay\.io is not served by this relay/);
    const r = await dockerd.dockerRaw(['pull', `${denied.host}/quay.io/team/app:1`], { timeoutMs: 60_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /registry host quay\.io is not served by this relay/);
  });

  it('says a relay that is down is not listening, and where', async () => {
    const a = await call(`${down.url}/v2/library/app/manifests/1`);
    assert.equal(a.status, 503);
    assert.match(message(a.body), /nothing listens at http:\/\/127\.0\.0\.1:\d+; is it running\?/);
    const r = await dockerd.dockerRaw(['pull', `${down.host}/library/app:1`], { timeoutMs: 60_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /503 Service Unavailable: upstream relay: unreachable: nothing listens at/);
  });

  it('says a relay certificate is not trusted, and which setting fixes it', async () => {
    const a = await call(`${untrusted.url}/v2/library/app/manifests/1`);
    assert.equal(a.status, 503);
    assert.match(message(a.body), /certificate not trusted: set upstreams\.relay\.caFile/);
    const r = await dockerd.dockerRaw(['pull', `${untrusted.host}/library/app:1`], { timeoutMs: 60_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /503 Service Unavailable: upstream relay: certificate not trusted: set upstreams\.relay\.caFile/);
  });
});
