/**
 * A replica's lease side in a worker thread, for the racing tests: the parent sends
 * { id, op: 'tryTake' | 'take' | 'release', name, ttlMs?, pollMs? } and gets { id, ok, at }
 * back (at: Date.now() when the operation finished).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Leases, type HeldLease } from '../../lib/cluster/lease.ts';
import { clusterObjects, type S3Access } from './cluster-bucket.ts';

const { access, holder } = workerData as { access: S3Access; holder: string };
const leases = new Leases(clusterObjects(access), holder);
const held = new Map<string, HeldLease>();

interface Command { id: number; op: 'tryTake' | 'take' | 'release'; name: string; ttlMs?: number; pollMs?: number }

parentPort?.on('message', (cmd: Command) => {
  void (async () => {
    try {
      let ok = false;
      if (cmd.op === 'tryTake' || cmd.op === 'take') {
        const timing = cmd.ttlMs ? { ttlMs: cmd.ttlMs } : {};
        const lease = cmd.op === 'take'
          ? await leases.take(cmd.name, { ...timing, ...(cmd.pollMs ? { pollMs: cmd.pollMs } : {}) })
          : await leases.tryTake(cmd.name, timing);
        if (lease) held.set(cmd.name, lease);
        ok = lease !== undefined;
      } else {
        const lease = held.get(cmd.name);
        held.delete(cmd.name);
        ok = lease?.valid ?? false;
        await lease?.release();
      }
      parentPort?.postMessage({ id: cmd.id, ok, at: Date.now() });
    } catch (err) {
      parentPort?.postMessage({ id: cmd.id, ok: false, at: Date.now(), error: String(err) });
    }
  })();
});
parentPort?.postMessage({ ready: true });
