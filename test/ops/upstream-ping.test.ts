import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateToken } from '../../lib/relay/tokens.ts';
import { startTestMirror, type TestMirror } from '../e2e/mirror-fixture.ts';
import { waitFor } from '../helpers/processes.ts';
import { startTestRelay, type TestRelay } from '../relay/fixture.ts';

/** A registry that answers /v2/ with 200 and remembers the headers of each request. */
async function recordingRegistry(): Promise<{ url: string; seen: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    if (req.url === '/v2/') seen.push(req.headers);
    res.writeHead(req.url === '/v2/' ? 200 : 404, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('upstream health pings go through the upstream client', function () {
  this.timeout(20_000);
  const saved = process.env.FERRY_UPSTREAM_PING_SECONDS;
  let a: Awaited<ReturnType<typeof recordingRegistry>>;
  let b: Awaited<ReturnType<typeof recordingRegistry>>;
  let mirror: TestMirror | undefined;
  let relay: TestRelay | undefined;
  before(async () => {
    process.env.FERRY_UPSTREAM_PING_SECONDS = '0.1';
    a = await recordingRegistry();
    b = await recordingRegistry();
  });
  after(async () => {
    if (saved === undefined) delete process.env.FERRY_UPSTREAM_PING_SECONDS;
    else process.env.FERRY_UPSTREAM_PING_SECONDS = saved;
    await mirror?.stop();
    await relay?.stop();
    await a.close();
    await b.close();
  });

  it('the mirror pings a relay with the relay token (the relay no longer logs a refusal from its own mirror)', async () => {
    const token = generateToken();
    mirror = await startTestMirror({ upstreams: { relay: { url: a.url, kind: 'relay', token } } });
    await waitFor(() => a.seen.length > 0, 5000, 'a ping');
    assert.equal(a.seen[0]?.authorization, `Bearer ${token}`);
    await mirror.stop();
    mirror = undefined;
  });

  it('the relay pings only the upstreams it allows', async () => {
    a.seen.length = 0;
    relay = await startTestRelay({ upstreams: { a: { url: a.url }, b: { url: b.url } }, relay: { allow: ['a'], tokens: [generateToken()] } });
    await waitFor(() => a.seen.length >= 3, 5000, 'a ping');
    assert.equal(b.seen.length, 0, 'pinged an upstream the relay does not allow');
  });
});
