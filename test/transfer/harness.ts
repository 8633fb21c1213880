/** One range server behind one fault proxy, a temp store (its partial blobs and blobs), and the small-chunk test config. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TransferConfig } from '../../lib/config/schema.ts';
import { openStore, type FsStorage } from '../../lib/storage/store.ts';
import { startTransfer, type Transfer, type TransferOptions } from '../../lib/transfer/transfer.ts';
import { createHttpRangeSource, type HttpRangeSource } from '../../lib/transfer/http-range-source.ts';
import type { ChunkDigests } from '../../lib/transfer/range-source.ts';
import { FaultProxy, type Faults } from '../fault-proxy/proxy.ts';
import { makeBlob, sha256, startRangeServer, type RangeServer, type ServerBehaviour } from './range-server.ts';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const CHUNK = 256 * KiB;

export const TEST_CONFIG: Partial<TransferConfig> = {
  chunksPerBlob: 500,
  minChunkBytes: CHUNK,
  maxChunkBytes: CHUNK,
  smallBlobBytes: 64 * KiB,
  minConnections: 2,
  maxConnections: 8,
  stallSeconds: 0.4,
  retries: 1000,
  // As a mirror (server/mirror.ts): bytes no piece digest checks reach readers once the blob verified.
  holdUnverified: true,
};

export const TEST_TIMING: Pick<TransferOptions, 'checkpointBytes' | 'adaptIntervalMs' | 'retryPolicy' | 'progressIntervalMs'> = {
  checkpointBytes: 64 * KiB,
  adaptIntervalMs: 300,
  retryPolicy: { baseMs: 20, maxMs: 200 },
  progressIntervalMs: 100,
};

/** Runs nothing else for `ms`: the process starved of CPU (a loaded machine), as its event loop sees it. */
export function starve(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* starved */ }
}

export interface Rig {
  data: Buffer;
  digest: string;
  server: RangeServer;
  proxy: FaultProxy;
  store: FsStorage;
  /** The store's directory of partial blobs (parts and journals). */
  dir: string;
  /** The part file of the blob, and where the blob is once committed. */
  partPath: string;
  blobPath: string;
  source: HttpRangeSource;
  start(extra?: Partial<TransferOptions>): Transfer;
  close(): Promise<void>;
}

/** `data`: the blob served (its length must be `size`); else seeded random bytes. */
export async function rig(size: number, opts: { faults?: Faults; seed?: number; behaviour?: ServerBehaviour; chunkDigests?: ChunkDigests; data?: Buffer } = {}): Promise<Rig> {
  const data = opts.data ?? makeBlob(size, opts.seed ?? 7);
  if (data.length !== size) throw new Error(`rig: data of ${data.length} bytes for a size of ${size}`);
  const server = await startRangeServer(data, opts.behaviour);
  const port = Number(new URL(server.url).port);
  const proxy = new FaultProxy({ target: { host: '127.0.0.1', port }, seed: opts.seed ?? 1, faults: opts.faults });
  await proxy.listen();
  const digests = opts.chunkDigests;
  const source = createHttpRangeSource({
    url: `${proxy.url}/blob`,
    ...(digests ? { chunkDigests: async () => digests } : {}),
  });
  const root = await mkdtemp(join(tmpdir(), 'ferry-transfer-'));
  const store = await openStore(root);
  const digest = sha256(data);
  const started: Transfer[] = [];
  return {
    data, digest, server, proxy, store, source,
    dir: store.paths.transfersDir,
    partPath: store.paths.partial(digest, 'part'),
    blobPath: store.paths.blob(digest),
    start(extra = {}) {
      const t = startTransfer({ digest, size, source, partials: store.partials, config: TEST_CONFIG, ...TEST_TIMING, ...extra });
      started.push(t);
      return t;
    },
    async close() {
      for (const t of started) t.abort('test over');
      await Promise.allSettled(started.map((t) => t.done));
      await source.close();
      await proxy.close();
      await server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
