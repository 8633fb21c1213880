/** lib/cluster/cluster-transfers.ts and follow-reader.ts without a bucket: readers whose client left. */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { clusterTransferStarter } from '../../lib/cluster/cluster-transfers.ts';
import { createFollowReader } from '../../lib/cluster/follow-reader.ts';
import type { ProgressWatcher } from '../../lib/cluster/progress-watcher.ts';
import type { RunningTransfer, TransferSpec } from '../../lib/mirror/transfers.ts';
import type { TransferSnapshot } from '../../lib/transfer/transfer.ts';

describe('a cluster transfer held here: its readers', () => {
  it('closes the holder\'s reader as soon as the client\'s stream is destroyed, while that reader still waits for its first byte (a body held until verified)', async () => {
    const sources: Readable[] = [];
    const holder: RunningTransfer = {
      digest: `sha256:${'f'.repeat(64)}`,
      size: 1000,
      firstByte: Promise.resolve(),
      done: new Promise(() => {}),
      createReader() {
        // Nothing comes: the transfer holds its bytes until the blob verified.
        const r = new Readable({ read() {} });
        sources.push(r);
        return r;
      },
      abort() {},
      snapshot: () => ({ state: 'running' }) as TransferSnapshot,
    };
    const transfer = clusterTransferStarter(() => holder)({ digest: holder.digest, size: holder.size } as TransferSpec);
    const client = transfer.createReader(0, 999);
    client.resume();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(sources.length, 1, 'the holder\'s reader was opened');
    const closed = once(sources[0]!, 'close');
    client.destroy();
    const quick = await Promise.race([closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
    assert.equal(quick, true, 'the holder\'s reader stays open after its client left');
  });
});

describe('a follow reader whose client left', () => {
  it('stops waiting on the bucket at once (it polled until the holder\'s next progress)', async () => {
    let aborted: AbortSignal | undefined;
    const watcher = {
      digest: `sha256:${'e'.repeat(64)}`,
      until: (_offset: number, signal?: AbortSignal) => new Promise<never>((_, reject) => {
        aborted = signal;
        signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      }),
    } as unknown as ProgressWatcher;
    const reader = createFollowReader({ watcher, start: 0, end: 1000, readRange: () => Promise.reject(new Error('not reached')) });
    reader.resume();
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(aborted && !aborted.aborted, 'the reader waits on the watcher');
    const closed = once(reader, 'close');
    reader.destroy();
    const quick = await Promise.race([closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
    assert.equal(quick, true, 'the follow reader did not close');
    assert.equal(aborted.aborted, true, 'its wait on the bucket was not aborted');
  });
});
