/**
 * N ferry mirrors on one store behind Debian's haproxy, as a site runs them (issue 15.3): each
 * replica a child process (`ferry mirror`, killable with SIGKILL) on 127.0.0.1:random with its own
 * data dir and the same config (its `storage` section an S3 bucket: the replicas share it), the
 * S3 keys in its environment; haproxy (test/helpers/haproxy.ts) in front of them. Stopped by PID.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ConfigInput } from '../../lib/config/schema.ts';
import { startFerryProcess, type FerryProcess } from '../e2e/transfer-fixture.ts';
import type { Rgw } from './ceph.ts';
import { startHaproxy, type Haproxy, type HaproxyOptions } from './haproxy.ts';

export interface ReplicasOptions {
  count: number;
  /** The replicas' one config (listen and dataDir are each replica's own). */
  config: Omit<ConfigInput, 'listen' | 'dataDir'>;
  /** Added to each replica's environment: the store's keys (Rgw.env). */
  env?: Record<string, string>;
  /** Run dist/ (benchmarks, after buildFerry()) rather than the sources through tsx. */
  compiled?: boolean;
  /** Log file prefix under test-output/. */
  name?: string;
  balance?: HaproxyOptions['balance'];
}

export interface Replicas {
  /** Replica i, as started (a killed one stays in place, dead). */
  replicas: FerryProcess[];
  haproxy: Haproxy;
  /** haproxy's http://127.0.0.1:PORT: what clients use. */
  url: string;
  host: string;
  /** SIGKILL replica i; resolves once haproxy has taken it out. */
  kill9(i: number): Promise<void>;
  /** Replicas that exited without kill9 or stop (a crash): 'r1: exit 1', in order. */
  crashed(): string[];
  /** Each live replica's peak RSS (VmHWM), bytes; undefined for a dead one. */
  peakRss(): Promise<(number | undefined)[]>;
  stop(): Promise<void>;
}

/** startReplicas on a fresh bucket of `rgw` (its name in `bucket`): the bucket is every replica's store, its keys in their environment. */
export async function startReplicasOnRgw(rgw: Rgw, opts: Omit<ReplicasOptions, 'env'>): Promise<Replicas & { bucket: string }> {
  const bucket = await rgw.createBucket();
  return { ...(await startReplicas({ ...opts, config: { ...opts.config, storage: rgw.storageConfig(bucket) }, env: rgw.env })), bucket };
}

export async function startReplicas(opts: ReplicasOptions): Promise<Replicas> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-replicas-'));
  const started: FerryProcess[] = [];
  let haproxy: Haproxy | undefined;
  const stop = async (): Promise<void> => {
    await haproxy?.stop();
    await Promise.all(started.map((r) => r.stop()));
    await rm(work, { recursive: true, force: true });
  };
  try {
    // One after another: their starts would race on the machine's two cores anyway.
    for (let i = 0; i < opts.count; i++) {
      const dataDir = path.join(work, `r${i}`);
      started.push(await startFerryProcess(opts.config, dataDir, `${opts.name ?? 'replica'}-r${i}`, {
        ...(opts.compiled ? { compiled: true } : {}),
        ...(opts.env ? { env: opts.env } : {}),
      }));
    }
    haproxy = await startHaproxy({ backends: started.map((r) => ({ port: Number(r.host.split(':')[1]) })), ...(opts.balance ? { balance: opts.balance } : {}) });
    await Promise.all(haproxy.servers.map((s) => haproxy!.waitForState(s, 'UP', 10_000)));
  } catch (err) {
    await stop();
    throw err;
  }
  const proxy = haproxy;
  const dead = new Set<number>();
  let stopping = false;
  const crashes: string[] = [];
  for (const [i, r] of started.entries()) {
    void r.process.exited.then((how) => {
      if (!dead.has(i) && !stopping) crashes.push(`r${i}: ${how.signal ?? `exit ${how.code}`}`);
      dead.add(i);
    });
  }
  return {
    replicas: started,
    haproxy: proxy,
    url: proxy.url,
    host: proxy.host,
    async kill9(i) {
      const r = started[i];
      if (!r) throw new Error(`no replica ${i}`);
      dead.add(i);
      if (r.process.child.exitCode === null && r.process.child.signalCode === null) await r.kill9();
      await proxy.waitForState(proxy.servers[i] as string, 'DOWN');
    },
    crashed: () => [...crashes],
    peakRss: () => Promise.all(started.map((r, i) => (dead.has(i) ? undefined : r.peakRss()))),
    stop() {
      stopping = true;
      return stop();
    },
  };
}
