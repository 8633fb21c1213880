import assert from 'node:assert/strict';
import net from 'node:net';
import { parseBytes } from './cli.ts';
import { FaultProxy, type Faults } from './proxy.ts';

const MiB = 1024 * 1024;

/** A TCP server that sends `size` pattern bytes to each connection (or echoes, with size 0). */
async function source(size: number): Promise<{ port: number; payload: Buffer; close(): Promise<void> }> {
  const payload = Buffer.alloc(size);
  for (let i = 0; i < Math.min(size, MiB); i++) payload[i] = (i * 31 + (i >> 8)) & 0xff;
  for (let i = MiB; i < size; i += MiB) payload.copy(payload, i, 0, Math.min(MiB, size - i));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    if (size === 0) s.pipe(s);
    else s.end(payload);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    payload,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

interface Received { data: Buffer; error?: NodeJS.ErrnoException; ms: number }

function receive(port: number, send?: Buffer): Promise<Received> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const parts: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => { if (send) s.end(send); });
    let error: NodeJS.ErrnoException | undefined;
    s.on('data', (b: Buffer) => parts.push(b));
    s.on('error', (e) => { error = e; });
    s.on('close', () => resolve({ data: Buffer.concat(parts), error, ms: performance.now() - t0 }));
  });
}

describe('fault proxy', function () {
  this.timeout(15_000);
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  async function setup(size: number, faults: Faults = {}, seed = 1): Promise<{ proxy: FaultProxy; payload: Buffer }> {
    const src = await source(size);
    const proxy = new FaultProxy({ target: `127.0.0.1:${src.port}`, faults, seed });
    await proxy.listen();
    open.push(proxy, src);
    return { proxy, payload: src.payload };
  }

  it('forwards bytes unchanged both ways without faults, and counts them', async () => {
    const { proxy } = await setup(0);
    const msg = Buffer.from('hello through the proxy');
    const got = await receive(proxy.port, msg);
    assert.ok(got.data.equals(msg));
    assert.equal(proxy.stats.bytesFromClient, msg.length);
    assert.equal(proxy.bytesFromUpstream, msg.length);
    assert.equal(proxy.stats.connections, 1);
  });

  it('caps the rate of each connection', async () => {
    const { proxy, payload } = await setup(2 * MiB, { rateBytesPerSec: 4 * MiB });
    const got = await receive(proxy.port);
    assert.ok(got.data.equals(payload));
    assert.ok(got.ms > 400 && got.ms < 1500, `2 MiB at 4 MiB/s took ${Math.round(got.ms)} ms`);
  });

  it('shares the aggregate cap between connections', async () => {
    const { proxy } = await setup(1 * MiB, { aggregateBytesPerSec: 4 * MiB });
    const t0 = performance.now();
    const all = await Promise.all([receive(proxy.port), receive(proxy.port)]);
    const ms = performance.now() - t0;
    assert.ok(all.every((g) => g.data.length === MiB));
    assert.ok(ms > 400, `2 MiB at 4 MiB/s in total took ${Math.round(ms)} ms`);
  });

  it('adds the round-trip time', async () => {
    const { proxy } = await setup(0, { latencyMs: 200 });
    const got = await receive(proxy.port, Buffer.from('ping'));
    assert.ok(got.ms >= 190, `echo took ${Math.round(got.ms)} ms`);
  });

  it('resets a connection with a real RST after some bytes', async () => {
    const { proxy, payload } = await setup(4 * MiB, { resetMeanBytes: 256 * 1024, rateBytesPerSec: 16 * MiB });
    const got = await receive(proxy.port);
    assert.equal(got.error?.code, 'ECONNRESET');
    assert.ok(got.data.length < payload.length);
    assert.equal(proxy.stats.resets, 1);
    assert.ok(got.data.equals(payload.subarray(0, got.data.length)));
  });

  it('counts what a reset or a vanished client leaves in the link as dropped', async () => {
    const { proxy } = await setup(4 * MiB, { resetMeanBytes: 256 * 1024, rateBytesPerSec: 2 * MiB, latencyMs: 100 });
    await receive(proxy.port);
    assert.equal(proxy.stats.resets, 1);
    const atReset = proxy.stats.bytesDropped;
    assert.ok(atReset > 0 && proxy.stats.bytesDroppedAtResets === atReset, 'what the link held at its reset, counted as such');
    // A client that goes away mid-stream, like a killed process.
    proxy.setFaults({ resetMeanBytes: undefined });
    const s = net.connect(proxy.port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.once('data', () => resolve()));
    s.destroy();
    while (proxy.openConnections > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const { bytesFromUpstream, bytesToClient, bytesDropped } = proxy.stats;
    assert.ok(bytesDropped > 0, 'the link held bytes at the reset and at the close');
    assert.equal(bytesFromUpstream, bytesToClient + bytesDropped);
    assert.equal(proxy.stats.bytesDroppedAtResets, atReset, 'a client closing is no reset of the link');
    assert.ok(bytesDropped > atReset, 'the close dropped what the link held too');
  });

  it('draws the same faults from the same seed', async () => {
    const runs: number[][] = [];
    for (let i = 0; i < 2; i++) {
      const { proxy } = await setup(1 * MiB, { truncateAfterBytes: undefined, resetMeanBytes: 200 * 1024 }, 42);
      runs.push([]);
      for (let c = 0; c < 3; c++) {
        await receive(proxy.port);
        runs[i]!.push(proxy.logs.at(-1)!.bytesDown);
      }
    }
    assert.deepEqual(runs[0], runs[1]);
    assert.equal(new Set(runs[0]).size, 3);
  });

  it('truncates a connection cleanly after exactly N bytes', async () => {
    const { proxy, payload } = await setup(1 * MiB, { truncateAfterBytes: 100_000 });
    const got = await receive(proxy.port);
    assert.equal(got.error, undefined);
    assert.ok(got.data.equals(payload.subarray(0, 100_000)));
    assert.equal(proxy.stats.truncations, 1);
  });

  it('flips the bytes at the given offsets and only those', async () => {
    const { proxy, payload } = await setup(200_000, { corruptOffsets: [0, 65_536, 199_999] });
    const got = await receive(proxy.port);
    const diffs: number[] = [];
    for (let i = 0; i < payload.length; i++) if (got.data[i] !== payload[i]) diffs.push(i);
    assert.deepEqual(diffs, [0, 65_536, 199_999]);
    assert.equal(proxy.stats.corruptions, 3);
  });

  it('corrupts about corruptPerMiB bytes per MiB', async () => {
    const { proxy, payload } = await setup(8 * MiB, { corruptPerMiB: 2 });
    const got = await receive(proxy.port);
    let diffs = 0;
    for (let i = 0; i < payload.length; i++) if (got.data[i] !== payload[i]) diffs++;
    assert.equal(diffs, proxy.stats.corruptions);
    assert.ok(diffs >= 4 && diffs <= 40, `${diffs} corrupted bytes in 8 MiB`);
  });

  it('gives each connection its own faults: the n-th connection meets the same flips, alone or among others', async () => {
    const flipsOf = (payload: Buffer, got: Buffer): number[] => {
      const at: number[] = [];
      for (let i = 0; i < payload.length; i++) if (got[i] !== payload[i]) at.push(i);
      return at;
    };
    /** The flipped offsets of each of three connections (as strings), connections in any order. */
    const flipsOfThree = async (concurrent: boolean): Promise<string[]> => {
      const { proxy, payload } = await setup(2 * MiB, { corruptPerMiB: 3, rateBytesPerSec: 16 * MiB }, 7);
      const got: Received[] = [];
      if (concurrent) got.push(...(await Promise.all([receive(proxy.port), receive(proxy.port), receive(proxy.port)])));
      else for (let i = 0; i < 3; i++) got.push(await receive(proxy.port));
      return got.map((g) => flipsOf(payload, g.data).join());
    };
    const alone = await flipsOfThree(false);
    const together = await flipsOfThree(true);
    assert.ok(alone.every((f) => f !== ''), `flipped offsets per connection: ${alone.join(' | ')}`);
    assert.equal(new Set(alone).size, 3, 'each connection has its own');
    assert.deepEqual([...together].sort(), [...alone].sort());
  });

  it('goes dark: nothing either way, on open and new connections, until it is lit again', async () => {
    const { proxy, payload } = await setup(1 * MiB, { rateBytesPerSec: 2 * MiB });
    const open = receive(proxy.port);
    while (proxy.stats.bytesToClient === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    proxy.setFaults({ dark: true });
    const held = proxy.stats.bytesToClient;
    const echo = await setup(0, { dark: true });
    const fresh = receive(echo.proxy.port, Buffer.from('anyone there?'));
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.ok(proxy.stats.bytesToClient - held <= 16 * 1024, 'at most the slice in hand goes out once dark');
    assert.equal(echo.proxy.stats.bytesFromClient, 0, 'the request of a new connection stays in the dark');
    assert.equal(echo.proxy.stats.bytesToClient, 0);
    proxy.setFaults({ dark: false });
    echo.proxy.setFaults({ dark: false });
    assert.ok((await open).data.equals(payload));
    assert.equal((await fresh).data.toString(), 'anyone there?');
  });

  it('stalls a connection for good, and resumes it when stalls are switched off at runtime', async () => {
    const { proxy, payload } = await setup(1 * MiB, { stallMeanBytes: 100_000 });
    const pending = receive(proxy.port);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(proxy.stats.stalls, 1);
    const stuckAt = proxy.stats.bytesToClient;
    assert.ok(stuckAt < payload.length);
    proxy.setFaults({ stallMeanBytes: undefined });
    const got = await pending;
    assert.ok(got.data.equals(payload));
  });

  it('stalls for stallMs and then carries on', async () => {
    const { proxy, payload } = await setup(512 * 1024, { stallMeanBytes: 200_000, stallMs: 150 });
    const got = await receive(proxy.port);
    assert.ok(got.data.equals(payload));
    assert.ok(proxy.stats.stalls >= 1);
    assert.ok(got.ms >= 140 * proxy.stats.stalls);
  });

  it('applies backpressure: a client that does not read does not make the proxy buffer the stream', async () => {
    const { proxy } = await setup(64 * MiB);
    const s = net.connect(proxy.port, '127.0.0.1');
    s.on('error', () => {});
    s.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const held = proxy.bytesFromUpstream;
    s.destroy();
    assert.ok(held < 32 * MiB, `the proxy read ${held} bytes for a client that read nothing`);
  });

  it('parses byte sizes for the command line', () => {
    assert.deepEqual(['1MB', '512KiB', '1.5m', '100', '2GiB'].map(parseBytes), [1e6, 524288, 1.5e6, 100, 2 * 1024 ** 3]);
    assert.throws(() => parseBytes('fast'));
  });
});
