/** test/helpers/haproxy.ts: Debian's haproxy balances across replicas and routes around a dead one. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.ts';

/** A trivial registry stand-in: GET /v2/ answers 200, GET /who answers its name. */
function startBackend(name: string, port = 0): Promise<Server> {
  const srv = createServer((req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
  });
  return new Promise((resolve) => srv.listen(port, '127.0.0.1', () => resolve(srv)));
}

function closeBackend(srv: Server): Promise<void> {
  srv.closeAllConnections();
  return new Promise((resolve) => srv.close(() => resolve()));
}

async function tally(url: string, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/who`);
    assert.equal(res.status, 200);
    const who = await res.text();
    seen.set(who, (seen.get(who) ?? 0) + 1);
  }
  return seen;
}

describe('haproxy in front of replicas (test/helpers/haproxy.ts)', function () {
  this.timeout(20_000);
  let backends: Server[] = [];
  let proxy: Haproxy | undefined;

  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    await Promise.all(backends.map((b) => (b.listening ? closeBackend(b) : Promise.resolve())));
    backends = [];
  });

  it('balances requests across 3 backends and routes around one that is down', async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((n) => startBackend(n)));
    const ports = backends.map((b) => (b.address() as AddressInfo).port);
    proxy = await startHaproxy({ backends: ports.map((port) => ({ port })) });
    for (const s of proxy.servers) await proxy.waitForState(s, 'UP');

    const all = await tally(proxy.url, 30);
    assert.deepEqual([...all.entries()].sort(), [['a', 10], ['b', 10], ['c', 10]]);

    await closeBackend(backends[1] as Server);
    // Before the checks notice, a refused connection is retried on another server.
    const early = await tally(proxy.url, 6);
    assert.equal(early.get('b'), undefined);
    await proxy.waitForState('r1', 'DOWN');
    const without = await tally(proxy.url, 20);
    assert.deepEqual([...without.entries()].sort(), [['a', 10], ['c', 10]]);

    backends[1] = await startBackend('b', ports[1]);
    await proxy.waitForState('r1', 'UP');
    const back = await tally(proxy.url, 30);
    assert.equal(back.get('b'), 10);
  });
});
