/**
 * Blob GET throughput on the S3 backend: one blob in a throwaway RGW (memstore), fetched whole by
 * N clients at once straight from RGW (GetObject, the SDK ferry uses), through a ferry mirror
 * process on that bucket (GET /v2/<name>/blobs/<digest> by node:http, streamed by ferry), and
 * through a second one with storage.redirect (its 307 followed to RGW), in turn, same run. Prints
 * MB/s and the ratios to RGW direct (issue 15's target: ferry >= 0.8x RGW), and the CPU each
 * streamed GB costs the ferry process, RGW (radosgw + its OSD) and the clients (this process), all
 * rounds summed: on a small machine the streamed ratio is set by these. Not a test.
 * Run: npx tsx bench/s3-serve.ts   S3SERVE_MIB (256)  S3SERVE_CLIENTS (1,4)  S3SERVE_ROUNDS (3)
 *   S3SERVE_CPU_PROF (a dir: the streaming ferry process writes a V8 CPU profile there when it stops)
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get } from 'node:http';
import { Readable } from 'node:stream';
import { S3Storage } from '../lib/storage/s3/storage.ts';
import { keys } from '../lib/storage/s3/keys.ts';
import { startFerryProcess } from '../test/e2e/transfer-fixture.ts';
import { startRgw } from '../test/helpers/ceph.ts';
import { cpuDuring } from './lib/cpu.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const MiB = 1 << 20;
const size = Number(process.env.S3SERVE_MIB ?? 256) * MiB;
const clientCounts = (process.env.S3SERVE_CLIENTS ?? '1,4').split(',').map(Number);
const rounds = Number(process.env.S3SERVE_ROUNDS ?? 3);
const cpuProfDir = process.env.S3SERVE_CPU_PROF;

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

/** CPU seconds spent by each process during the streamed bursts, summed over rounds. */
interface StreamCpu { ferry: number; rgw: number; client: number; bytes: number }

/** radosgw's and the OSD's pids (the RGW side of a GET: memstore data lives in the OSD). */
async function rgwPids(dir: string): Promise<number[]> {
  const pids = await Promise.all(['client.rgw.a', 'osd.0'].map((d) => readFile(join(dir, 'run', `${d}.pid`), 'utf8').then(Number, () => NaN)));
  return pids.filter((p) => p > 0);
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
  const storage = rgw.storageConfig(bucketName);
  const mirror = await startFerryProcess({ storage }, join(dir, 'data'), 'ferry-s3-bench', { env: rgw.env, ...(cpuProfDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] } : {}) });
  const redirecting = await startFerryProcess({ storage: { ...storage, redirect: { expirySeconds: 60 } } }, join(dir, 'data-redirect'), 'ferry-s3-bench-redirect', { env: rgw.env });
  const direct = (): Promise<number> => bucket.get(keys.blob(digest)).then((r) => drain(r!.body));
  /** GET of url, its body drained; a 307 is followed once (to RGW). */
  const fetchBody = (url: string, expect: 200 | 307): Promise<number> => new Promise((resolve, reject) => {
    get(url, (res) => {
      if (res.statusCode !== expect) return reject(new Error(`${url} answered ${res.statusCode}`));
      if (expect === 307) {
        res.resume();
        return resolve(fetchBody(res.headers.location ?? '', 200));
      }
      drain(res).then(resolve, reject);
    }).on('error', reject);
  });
  const viaFerry = (): Promise<number> => fetchBody(`${mirror.url}/v2/bench/app/blobs/${digest}`, 200);
  const redirected = (): Promise<number> => fetchBody(`${redirecting.url}/v2/bench/app/blobs/${digest}`, 307);
  console.log(`blob ${size / MiB} MiB, RGW memstore on 127.0.0.1, ${rounds} rounds (best of each)`);
  console.log('clients  RGW direct MB/s  through ferry MB/s  ratio  redirected by ferry MB/s  ratio  streamed core-s/GB: ferry  RGW  client');
  const rgwSide = await rgwPids(rgw.dir);
  for (const clients of clientCounts) {
    let bestDirect = 0;
    let bestFerry = 0;
    let bestRedirected = 0;
    const cpu: StreamCpu = { ferry: 0, rgw: 0, client: 0, bytes: 0 };
    for (let i = 0; i < rounds; i++) {
      bestDirect = Math.max(bestDirect, await measure(clients, direct));
      const clientBefore = process.cpuUsage();
      const ferrySide = await cpuDuring([mirror.pid], () => cpuDuring(rgwSide, () => measure(clients, viaFerry)));
      const clientUsed = process.cpuUsage(clientBefore);
      bestFerry = Math.max(bestFerry, ferrySide.result.result);
      cpu.ferry += ferrySide.seconds;
      cpu.rgw += ferrySide.result.seconds;
      cpu.client += (clientUsed.user + clientUsed.system) / 1e6;
      cpu.bytes += clients * size;
      bestRedirected = Math.max(bestRedirected, await measure(clients, redirected));
    }
    const perGB = (s: number): string => (s / (cpu.bytes / 1e9)).toFixed(2);
    console.log(`${String(clients).padStart(7)}  ${bestDirect.toFixed(0).padStart(15)}  ${bestFerry.toFixed(0).padStart(18)}  ${(bestFerry / bestDirect).toFixed(2)}  `
      + `${bestRedirected.toFixed(0).padStart(24)}  ${(bestRedirected / bestDirect).toFixed(2)}  ${perGB(cpu.ferry).padStart(25)}  ${perGB(cpu.rgw).padStart(3)}  ${perGB(cpu.client).padStart(6)}`);
  }
  await Promise.all([mirror.stop(), redirecting.stop()]);
} finally {
  await rgw.stop();
  await rm(dir, { recursive: true, force: true });
}
