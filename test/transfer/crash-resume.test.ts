import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { KiB, MiB, TEST_CONFIG, TEST_TIMING, rig, type Rig } from './harness.ts';

const CHILD = fileURLToPath(new URL('./fixtures/transfer-child.ts', import.meta.url));

function runChild(args: object, onLine: (msg: Record<string, unknown>, child: ChildProcess) => void): { child: ChildProcess; exit: Promise<number | string | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => { stderr += b.toString(); });
  createInterface({ input: child.stdout! }).on('line', (line) => onLine(JSON.parse(line) as Record<string, unknown>, child));
  const exit = new Promise<number | string | null>((resolve) => child.on('exit', (code, signal) => {
    if (code) console.error(stderr);
    resolve(code ?? signal);
  }));
  return { child, exit };
}

describe('transfer crash and resume', function () {
  this.timeout(30_000);
  let r: Rig | undefined;
  let running: ChildProcess | undefined;
  afterEach(async () => {
    if (running?.exitCode === null) running.kill('SIGKILL');
    await r?.close();
    r = undefined;
  });

  it('loses at most two chunks of bytes when the process is killed -9 half-way and restarted', async () => {
    const size = 8 * MiB;
    // 16 chunks. Without in-chunk checkpoints a kill would lose about half of each of the 4 chunks in flight.
    const chunk = 512 * KiB;
    r = await rig(size, { faults: { aggregateBytesPerSec: 4 * MiB } });
    const args = {
      url: `${r.proxy.url}/blob`, root: r.store.root, digest: r.digest, size,
      config: { ...TEST_CONFIG, minChunkBytes: chunk, maxChunkBytes: chunk, maxConnections: 4 }, ...TEST_TIMING,
      // What a kill loses: per connection, up to one checkpoint plus what sat in socket buffers.
      checkpointBytes: 32 * KiB,
    };
    let killedAt = 0;
    const first = runChild(args, (msg, child) => {
      if (!killedAt && typeof msg.bytesDone === 'number' && msg.bytesDone >= size / 2) {
        killedAt = msg.bytesDone;
        child.kill('SIGKILL');
      }
    });
    running = first.child;
    assert.equal(await first.exit, 'SIGKILL');
    assert.ok(killedAt > 0 && killedAt < size, `killed at ${killedAt}`);
    const sentBeforeKill = r.proxy.stats.bytesToClient;

    let verified: Record<string, unknown> | undefined;
    const second = runChild(args, (msg) => { if (msg.verified) verified = msg; });
    running = second.child;
    assert.equal(await second.exit, 0);
    assert.ok(verified, 'the restarted transfer did not verify');
    assert.ok((await readFile(verified.verified as string)).equals(r.data));

    const resumed = verified.resumedBytes as number;
    assert.ok(resumed >= size / 2 - 2 * chunk, `resumed only ${resumed} of ${killedAt} bytes`);
    // Everything that crossed the link (headers included) beyond one copy of the blob was fetched twice.
    const twice = r.proxy.stats.bytesToClient - size;
    if (process.env.FERRY_TEST_FIGURES) console.log(`killed at ${killedAt}, resumed ${resumed}, fetched twice ${twice} bytes`);
    assert.ok(twice <= 2 * chunk, `${Math.round(twice / KiB)} KiB fetched twice (sent before the kill: ${sentBeforeKill})`);
  });
});
