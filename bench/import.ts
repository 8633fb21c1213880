/**
 * Import throughput and memory: builds a docker save tarball of --size-gib GiB (4 layers, content
 * from a repeated random block, so building is quick), then imports it in a child process and
 * prints MB/s and the child's peak RSS. Not a test.
 *
 *   npx tsx bench/import.ts [--size-gib 2] [--layers 4] [--keep]
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const BLOCK = randomBytes(1024 * 1024);

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

async function writeEntry(pack: tar.Pack, name: string, size: number, fill: (n: number) => Buffer): Promise<string> {
  const hash = createHash('sha256');
  let done!: (e?: Error | null) => void;
  const finished = new Promise<void>((resolve, reject) => {
    done = (e) => (e ? reject(e) : resolve());
  });
  const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (e) => done(e));
  let left = size;
  while (left > 0) {
    const chunk = fill(Math.min(left, BLOCK.length));
    hash.update(chunk);
    left -= chunk.length;
    if (!entry.write(chunk)) await once(entry as unknown as NodeJS.EventEmitter, 'drain');
  }
  (entry as unknown as { end(): void }).end();
  await finished;
  return `sha256:${hash.digest('hex')}`;
}

async function buildTarball(file: string, bytes: number, layers: number): Promise<void> {
  const pack = tar.pack();
  const out = pipeline(pack as unknown as NodeJS.ReadableStream, createWriteStream(file));
  const per = Math.floor(bytes / layers / 512) * 512;
  const diffIds: string[] = [];
  const paths: string[] = [];
  for (let i = 0; i < layers; i++) {
    // Each layer differs in its first byte of every block, so no two layers share a digest.
    const block = Buffer.from(BLOCK);
    block[0] = i;
    const p = `${String(i).padStart(64, '0')}/layer.tar`;
    diffIds.push(await writeEntry(pack, p, per, (n) => block.subarray(0, n)));
    paths.push(p);
  }
  const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  await new Promise<void>((resolve, reject) => pack.entry({ name: configName }, config, (e) => (e ? reject(e) : resolve())));
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ['bench/big:1'], Layers: paths }]));
  await new Promise<void>((resolve, reject) => pack.entry({ name: 'manifest.json' }, manifest, (e) => (e ? reject(e) : resolve())));
  pack.finalize();
  await out;
}

async function child(file: string, dataDir: string): Promise<void> {
  const { openStore } = await import('../lib/storage/store.ts');
  const { importBundle } = await import('../lib/archive/import.ts');
  const store = await openStore(dataDir);
  const started = process.hrtime.bigint();
  const result = await importBundle(store, file);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({ seconds, maxRssKiB: process.resourceUsage().maxRSS, images: result.images.length }));
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3] as string, process.argv[4] as string);
  const gib = Number(arg('--size-gib', '2'));
  const layers = Number(arg('--layers', '4'));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-import-'));
  try {
    const file = path.join(dir, 'big.tar');
    let t = Date.now();
    await buildTarball(file, gib * 1024 ** 3, layers);
    const size = (await stat(file)).size;
    console.log(`built ${file}: ${(size / 1024 ** 3).toFixed(2)} GiB in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    t = Date.now();
    const self = fileURLToPath(import.meta.url);
    const proc = spawn(process.execPath, ['--import', 'tsx', self, '--child', file, path.join(dir, 'data')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const [code] = (await once(proc, 'exit')) as [number];
    if (code !== 0) throw new Error(`import child exited ${code}`);
    const r = JSON.parse(out) as { seconds: number; maxRssKiB: number };
    console.log(`import: ${(size / 1e6 / r.seconds).toFixed(0)} MB/s (${r.seconds.toFixed(1)} s), peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB (wall with process start ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } finally {
    if (!process.argv.includes('--keep')) await rm(dir, { recursive: true, force: true });
  }
}

await main();
