/**
 * kill -9 of a ferry process in the middle of a transfer: the next process on the same data dir
 * resumes from its journal, and the link carries at most two chunks a second time; of what the
 * link had delivered to the killed process, at most a piece per connection is fetched again (what
 * sat in socket and body buffers, and the journal's last few KiB: issue 12's "kill -9 <= 1 piece").
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultProxy } from '../fault-proxy/proxy.ts';
import { StorePaths } from '../../lib/storage/paths.ts';
import { loadJournal } from '../../lib/storage/partial-journal.ts';
import { pieceSizeFor } from '../../lib/transfer/chunk-plan.ts';
import { TRANSFER_DEFAULTS } from '../../lib/transfer/tuning.ts';
import { waitFor } from '../helpers/processes.ts';
import { MiB, linkConfig, readBlob, startFerryProcess, startLink, startUpstream, type FerryProcess, type Upstream } from './transfer-fixture.ts';

const CHUNK = 2 * MiB;
const TRANSFER = { minChunkBytes: CHUNK, maxChunkBytes: CHUNK, smallBlobBytes: 256 * 1024, minConnections: 4, maxConnections: 4, stallSeconds: 2 };

describe('kill -9 of the ferry process mid-transfer', function () {
  this.timeout(120_000);
  let upstream: Upstream;
  let proxy: FaultProxy;
  let ferry: FerryProcess | undefined;
  let dataDir: string;

  before(async () => {
    upstream = await startUpstream({ layers: [32 * MiB], seed: 'transfer-crash', runnable: false });
    proxy = await startLink(upstream.registry.host, { rateBytesPerSec: MiB, latencyMs: 20 }, 3);
    dataDir = await mkdtemp(join(tmpdir(), 'ferry-crash-data-'));
  });
  after(async () => {
    await ferry?.stop();
    await proxy?.close();
    await upstream?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('resumes after a restart on the same data dir, fetching at most two chunks again, and at most a piece per connection of what it had been delivered', async () => {
    const layer = upstream.image.layers[0]!;
    const config = linkConfig(proxy.url, TRANSFER);
    ferry = await startFerryProcess(config, dataDir, 'ferry-crash-1');
    const first = readBlob(ferry.url, upstream.repository, layer.digest);
    await waitFor(() => proxy.stats.bytesToClient >= layer.size / 2, 60_000, 'half the layer across the link');
    await ferry.kill9();
    const cut = await first.catch((e: unknown) => ({ bytes: -1, error: String(e) }));
    assert.ok(cut.bytes < layer.size, 'the first client could not have the whole blob');
    await waitFor(() => proxy.openConnections === 0, 10_000, 'the link to see the killed process\'s connections close');
    const beforeRestart = proxy.stats.bytesFromUpstream;
    const kept = (await loadJournal(new StorePaths(dataDir).partial(layer.digest, 'journal'), layer.digest, layer.size))?.size ?? 0;
    const lost = proxy.stats.bytesToClient - kept;
    const piece = pieceSizeFor(layer.size, CHUNK, TRANSFER_DEFAULTS.pieceBytes);
    assert.ok(lost <= TRANSFER.maxConnections * piece, `the killed process had been delivered ${lost} bytes it did not journal: more than a piece (${piece}) per connection`);
    await ferry.stop();

    ferry = await startFerryProcess(config, dataDir, 'ferry-crash-2');
    const second = await readBlob(ferry.url, upstream.repository, layer.digest);
    assert.deepEqual({ status: second.status, bytes: second.bytes, digest: second.digest }, { status: 200, bytes: layer.size, digest: layer.digest });
    const total = proxy.stats.bytesFromUpstream;
    const twice = total - layer.size;
    assert.ok(total - beforeRestart < layer.size * 0.75, `the second run fetched ${total - beforeRestart} bytes: it did not resume`);
    assert.ok(twice <= 2 * CHUNK, `${twice} bytes crossed the link twice (chunk ${CHUNK})`);
  });
});
