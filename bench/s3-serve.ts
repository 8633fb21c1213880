/**
 * Blob GET throughput on the S3 backend: one blob in a throwaway RGW (memstore), fetched whole by
 * N clients at once straight from RGW (GetObject, the SDK ferry uses) and through a ferry mirror
 * process on that bucket (GET /v2/<name>/blobs/<digest> by node:http), alternately, same run. Prints MB/s and the ratio
 * (issue 15's target: ferry >= 0.8x RGW). Not a test.
 * Run: npx tsx bench/s3-serve.ts   S3SERVE_MIB (256)  S3SERVE_CLIENTS (1,4)  S3SERVE_ROUNDS (3)
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get } from 'node:http';
import { Readable } from 'node:stream';
import { S3Storage } from '../lib/storage/s3/storage.ts';
import { keys } from '../lib/storage/s3/keys.ts';
import { startFerryProcess } from '../test/e2e/transfer-fixture.ts';
import { startRgw } from '../test/helpers/ceph.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const MiB = 1 << 20;
const size = Number(process.env.S3SERVE_MIB ?? 256) * MiB;
const clientCounts = (process.env.S3SERVE_CLIENTS ?? '1,4').split(',').map(Number);
const rounds = Number(process.env.S3SERVE_ROUNDS ?? 3);

async function drain(body: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const c of body) n += c.length;
  return n;
}

/** MB/s of `clients` fetches at once, each of the whole blob. */
async function measure(clients: number, fetchOne: () => Promise<number>): Promise<number> {
  const started = process.hrtime.bigint();
  const bytes = (await Promise.all(Array.from({ length: clients }, fetchOne))).reduce((a, b) => a + b, 0);
  if (bytes !== clients * size) throw new Error(`fetched ${bytes} bytes, expected ${clients * size}`);
  return bytes / 1e6 / (Number(process.hrtime.bigint() - started) / 1e9);
}

const rgw = await startRgw({ storeBytes: 4 * size + 512 * MiB });
const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-s3-'));
try {
  const bucketName = await rgw.createBucket();
  const bucket = rgw.bucket(bucketName);
  const store = new S3Storage(bucket);
  const data = randomBytes(size);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  await store.blobs.ingest(Readable.from([data]), { digest });
  await store.repositories.linkBlob('bench/app', digest);
  await store.repositories.setOrigin('bench/app', 'local');
  const mirror = await startFerryProcess({ storage: rgw.storageConfig(bucketName) }, join(dir, 'data'), 'ferry-s3-bench', { env: rgw.env });
  const direct = (): Promise<number> => bucket.get(keys.blob(digest)).then((r) => drain(r!.body));
  const viaFerry = (): Promise<number> => new Promise((resolve, reject) => {
    get(`${mirror.url}/v2/bench/app/blobs/${digest}`, (res) => {
      if (res.statusCode !== 200) reject(new Error(`ferry answered ${res.statusCode}`));
      drain(res).then(resolve, reject);
    }).on('error', reject);
  });
  console.log(`blob ${size / MiB} MiB, RGW memstore on 127.0.0.1, ${rounds} rounds (best of each)`);
  console.log('clients  RGW direct MB/s  through ferry MB/s  ratio');
  for (const clients of clientCounts) {
    let bestDirect = 0;
    let bestFerry = 0;
    for (let i = 0; i < rounds; i++) {
      bestDirect = Math.max(bestDirect, await measure(clients, direct));
      bestFerry = Math.max(bestFerry, await measure(clients, viaFerry));
    }
    console.log(`${String(clients).padStart(7)}  ${bestDirect.toFixed(0).padStart(15)}  ${bestFerry.toFixed(0).padStart(18)}  ${(bestFerry / bestDirect).toFixed(2)}`);
  }
  await mirror.stop();
} finally {
  await rgw.stop();
  await rm(dir, { recursive: true, force: true });
}
