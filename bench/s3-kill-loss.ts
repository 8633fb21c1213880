/**
 * What a kill -9 of a cluster holder costs in bytes fetched again, at the store: a pull-through
 * fill of a 32 MiB blob into an S3 partial blob on a throwaway RGW (memstore), 4 connections of
 * 2 MiB/s each writing 16 KiB at a time and recording each write (as the engine does), is killed
 * at a random instant 1.5-2.5 s in (from then on its bucket writes never land); a second replica
 * opens the partial blob as a successor would. Lost = bytes written before the kill that the
 * successor does not resume (it fetches them across the link again; what the link itself had in
 * flight comes on top). Backlog = bytes the link had delivered by the kill (each connection's
 * 2 MiB/s schedule) that its writes had not taken yet, held back by the partial blob's
 * backpressure: in a real replica they sit in socket buffers, and are lost with it too. Prints
 * each kill and the mean, median and max. Not a test.
 *
 *   npx tsx bench/s3-kill-loss.ts        KILLS (12)
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { S3Storage } from '../lib/storage/s3/storage.ts';
import { startRgw } from '../test/helpers/ceph.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const MiB = 1 << 20;
const WRITE = 16 * 1024;
const RATE = 2 * MiB;
const CONNECTIONS = 4;

async function main(): Promise<void> {
  const rgw = await startRgw();
  try {
    const root = rgw.bucket(await rgw.createBucket());
    const losses: number[] = [];
    const backlogs: number[] = [];
    for (let kill = 0; kill < Number(process.env.KILLS ?? 12); kill++) {
      const bucket = root.under(`k${kill}/`);
      const data = randomBytes(CONNECTIONS * 8 * MiB);
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      let dead = false;
      let die!: () => void;
      const killed = new Promise<void>((resolve) => (die = resolve));
      // The dying replica's bucket: once it is killed, none of its writes lands.
      const dying = new Proxy(bucket, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target) as unknown;
          if (typeof value !== 'function') return value;
          const fn = value as (...a: unknown[]) => unknown;
          return prop === 'put' || prop === 'delete' || prop === 'deleteMany' ? (...a: unknown[]) => (dead ? new Promise(() => {}) : fn.apply(target, a)) : fn.bind(target);
        },
      });
      const part = await new S3Storage(dying).partials.open(digest, data.length);
      let written = 0;
      const started = performance.now();
      const connection = async (start: number, end: number): Promise<void> => {
        for (let pos = start; pos < end && !dead; pos += WRITE) {
          const wait = started + ((pos - start) / RATE) * 1000 - performance.now();
          if (wait > 0) await sleep(wait);
          if (dead) return;
          await Promise.race([part.write(pos, data.subarray(pos, pos + WRITE)), killed]);
          if (dead) return;
          written += WRITE;
          part.record({ start: pos, end: pos + WRITE - 1 }).catch(() => {});
        }
      };
      const killAt = 1500 + Math.random() * 1000;
      const connections = Array.from({ length: CONNECTIONS }, (_, i) => connection(i * 8 * MiB, (i + 1) * 8 * MiB));
      await sleep(killAt);
      dead = true;
      die();
      const atKill = written;
      const elapsed = (performance.now() - started) / 1000;
      // What the link had delivered by now, a connection of 8 MiB at RATE each.
      const backlog = CONNECTIONS * Math.min(8 * MiB, Math.floor((elapsed * RATE) / WRITE) * WRITE) - atKill;
      backlogs.push(Math.max(0, backlog) / MiB);
      await Promise.all(connections);
      const resumed = (await new S3Storage(bucket).partials.open(digest, data.length)).resumed.reduce((n, r) => n + r.end + 1 - r.start, 0);
      losses.push((atKill - resumed) / MiB);
      process.stdout.write(`kill ${kill}: at ${Math.round(killAt)} ms, ${(atKill / MiB).toFixed(2)} MiB written, ${(resumed / MiB).toFixed(2)} MiB resumed, ${((atKill - resumed) / MiB).toFixed(2)} MiB lost, ${backlogs.at(-1)!.toFixed(2)} MiB backlog\n`);
    }
    losses.sort((a, b) => a - b);
    const mean = losses.reduce((a, b) => a + b, 0) / losses.length;
    backlogs.sort((a, b) => a - b);
    process.stdout.write(`backlog MiB: mean ${(backlogs.reduce((a, b) => a + b, 0) / backlogs.length).toFixed(2)}, median ${backlogs[Math.floor(backlogs.length / 2)]!.toFixed(2)}, max ${backlogs.at(-1)!.toFixed(2)}\n`);
    process.stdout.write(`lost MiB: mean ${mean.toFixed(2)}, median ${losses[Math.floor(losses.length / 2)]!.toFixed(2)}, max ${losses.at(-1)!.toFixed(2)} (${losses.length} kills)\n`);
  } finally {
    await rgw.stop();
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
