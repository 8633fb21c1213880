/**
 * Lease bench (issue 15.2): what a lease on a real Ceph RGW costs and how fast a dead holder's
 * lease is taken over, with the defaults a replica uses (ttl 5 s, renew every ~1.7 s, contenders
 * polling every ttl/5). Not a test: prints figures.
 * Run: npx tsx bench/lease.ts   (BENCH_OPS=200 sequential operations, BENCH_ROUNDS=30 races of 8)
 */
import { performance } from 'node:perf_hooks';
import { Leases, type HeldLease } from '../lib/cluster/lease.ts';
import { ClusterObjects, type PutCondition } from '../lib/cluster/objects.ts';
import { startRgw, type Rgw } from '../test/helpers/ceph.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const ops = Number(process.env.BENCH_OPS ?? 200);
const rounds = Number(process.env.BENCH_ROUNDS ?? 30);

/** A replica that can die: once `dead`, none of its writes reach the store. */
class MortalObjects extends ClusterObjects {
  dead = false;
  override put(key: string, body: string | Buffer, condition?: PutCondition): Promise<string | undefined> {
    return this.dead ? new Promise(() => {}) : super.put(key, body, condition);
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

const fmt = (xs: number[]): string => `p50 ${pct(xs, 50).toFixed(1)} ms, p95 ${pct(xs, 95).toFixed(1)} ms`;

async function time<T>(fn: () => Promise<T>, into: number[]): Promise<T> {
  const t = performance.now();
  const r = await fn();
  into.push(performance.now() - t);
  return r;
}

async function main(): Promise<void> {
  let rgw: Rgw | undefined;
  try {
    rgw = await startRgw();
    const bucket = rgw.bucket(await rgw.createBucket(), 'cluster/');
    const objects = new ClusterObjects(bucket);
    const leases = new Leases(objects, 'bench');

    const take: number[] = [];
    const renew: number[] = [];
    const release: number[] = [];
    for (let i = 0; i < ops; i++) {
      const lease = (await time(() => leases.tryTake(`seq-${i}`), take)) as HeldLease;
      await time(() => lease.renew(), renew);
      await time(() => lease.release(), release);
    }
    console.log(`sequential, ${ops} each: take ${fmt(take)}; renew ${fmt(renew)}; release ${fmt(release)}`);

    const racers = Array.from({ length: 8 }, (_, i) => new Leases(new ClusterObjects(rgw!.bucket(bucket.bucket, 'cluster/')), `racer-${i}`));
    const round: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const won = await time(() => Promise.all(racers.map((l) => l.tryTake(`race-${r}`))), round);
      const winners = won.filter((l) => l !== undefined);
      if (winners.length !== 1) throw new Error(`round ${r}: ${winners.length} winners`);
      await winners[0]?.release();
    }
    console.log(`8 replicas racing for one lease, ${rounds} rounds: one winner each; a round ${fmt(round)}`);

    const mortal = new MortalObjects(bucket);
    const holder = (await new Leases(mortal, 'holder').tryTake('takeover')) as HeldLease;
    const contender = new Leases(objects, 'contender');
    const taking = contender.take('takeover');
    await new Promise((r) => setTimeout(r, 7000));
    let lostAt = 0;
    holder.signal.addEventListener('abort', () => (lostAt = performance.now()));
    mortal.dead = true;
    const diedAt = performance.now();
    const taken = await taking;
    const takenAt = performance.now();
    console.log(`takeover, ttl 5 s, contender polling every ~1 s: the dead holder stopped itself ${((lostAt - diedAt) / 1000).toFixed(2)} s after dying, the contender held it ${((takenAt - diedAt) / 1000).toFixed(2)} s after (${takenAt > lostAt ? 'after' : 'BEFORE'} the holder stopped)`);
    await taken.release();
  } finally {
    await rgw?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
