/** Issue 12 point 3: what a link learned (connections, goodput) survives between transfers and restarts. */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineTransferStarter } from '../../lib/mirror/transfers.ts';
import { LinkBudget } from '../../lib/transfer/link-budget.ts';
import { LinkState } from '../../lib/transfer/link-state.ts';
import { openStore } from '../../lib/storage/store.ts';
import { MiB, TEST_CONFIG, rig, type Rig } from './harness.ts';

describe('link state kept between transfers and restarts', function () {
  this.timeout(30_000);
  let dir: string;
  let r: Rig | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-link-state-'));
  });
  afterEach(async () => {
    await r?.close();
    r = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('a budget starts from what an earlier one learned, within its own bounds', () => {
    const link = new LinkBudget({ minConnections: 2, maxConnections: 16, learned: { connections: 12, slowStart: false, rate: 5e6 } });
    assert.equal(link.limit, 12);
    assert.equal(link.controller.slowStart, false);
    assert.deepEqual(link.learned(), { connections: 12, slowStart: false, rate: 5e6 });
    const capped = new LinkBudget({ minConnections: 2, maxConnections: 8, learned: { connections: 12, slowStart: true, rate: 0 } });
    assert.equal(capped.limit, 8);
    assert.equal(capped.controller.slowStart, true);
  });

  it('writes the file atomically and reads it back; a torn or foreign file is ignored', async () => {
    const store = await openStore(dir);
    const path = store.paths.transferState('links');
    const a = await LinkState.load(store.partials, 60_000);
    a.set('quay', { connections: 20, slowStart: false, rate: 1234 });
    await a.flush();
    assert.deepEqual((await LinkState.load(store.partials)).get('quay'), { connections: 20, slowStart: false, rate: 1234 });
    assert.ok((await readFile(path, 'utf8')).includes('"quay"'));
    assert.deepEqual(await readdir(store.paths.tmpDir), [], 'a temp file was left behind');
    const errors: unknown[] = [];
    await import('node:fs/promises').then((fs) => fs.writeFile(path, '{"quay": {"connec'));
    assert.equal((await LinkState.load(store.partials, 5000, (e) => errors.push(e))).get('quay'), undefined);
    assert.equal(errors.length, 1);
  });

  it('the first transfer after a restart starts at the connections the last one reached', async () => {
    r = await rig(8 * MiB, { faults: { rateBytesPerSec: 512 * 1024 } });
    const store = await openStore(dir);
    const path = store.paths.transferState('links');
    const config = { ...TEST_CONFIG, minConnections: 2, maxConnections: 16 };
    const before = await LinkState.load(store.partials, 60_000);
    const transfer = engineTransferStarter(config, { linkState: before })({
      digest: r.digest, size: r.data.length, source: r.source, partials: store.partials, label: 'test', upstream: 'hub',
      afterCommit: async () => {},
    });
    await transfer.done;
    await before.flush();
    const saved = JSON.parse(await readFile(path, 'utf8')) as Record<string, { connections: number; rate: number }>;
    assert.ok(saved.hub, 'nothing saved for the upstream');
    assert.ok(saved.hub.connections > config.minConnections, `the link never grew (${saved.hub.connections})`);
    assert.ok(saved.hub.rate > 0);
    // A new process: a new state file object over the same path, a new transferStarter.
    const after = await LinkState.load(store.partials, 60_000);
    const again = engineTransferStarter(config, { linkState: after })({
      digest: r.digest, size: r.data.length, source: r.source, partials: store.partials, label: 'test', upstream: 'hub',
      afterCommit: async () => {},
    });
    assert.equal(again.snapshot().concurrency, saved.hub.connections);
    again.abort('test over');
    await again.done.catch(() => {});
  });
});
