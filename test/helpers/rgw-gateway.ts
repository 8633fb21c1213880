/**
 * An RGW outage without losing the cluster: radosgw (the S3 gateway of a test/helpers/ceph.ts
 * cluster) killed by its pid file while the mon and the OSD keep the data, then started again on
 * the same port and config. The restarted daemon writes the same pid file, so Rgw.stop() and the
 * exit hook still stop it.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Rgw } from './ceph.ts';
import { waitFor } from './processes.ts';

const GATEWAY = 'client.rgw.a';

async function gatewayPid(rgw: Rgw): Promise<number> {
  const pid = Number((await readFile(path.join(rgw.dir, 'run', `${GATEWAY}.pid`), 'utf8')).trim());
  if (!(pid > 1)) throw new Error(`no radosgw pid in ${rgw.dir}`);
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills radosgw (SIGKILL: no goodbye) and resolves once its port refuses connections. */
export async function stopGateway(rgw: Rgw): Promise<void> {
  const pid = await gatewayPid(rgw);
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !alive(pid), 10_000, 'radosgw gone');
  await waitFor(() => fetch(rgw.endpoint).then(() => false, () => true), 10_000, 'the gateway port closed');
}

/** Starts radosgw again with the cluster's config; resolves once it answers HTTP. */
export async function startGateway(rgw: Rgw): Promise<void> {
  // radosgw daemonizes once it has reached the cluster: the launcher is not waited for.
  const launcher = spawn('radosgw', ['-c', path.join(rgw.dir, 'ceph.conf'), '-n', GATEWAY], { stdio: 'ignore', detached: true });
  launcher.unref();
  await waitFor(() => fetch(rgw.endpoint).then((r) => r.status < 500, () => false), 60_000, 'radosgw answering again');
}
