/**
 * The two servers of the duel, each a real child process on 127.0.0.1 with its own temp store,
 * both logging at warn (no per-request log line on either side).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, startProcess, type ManagedProcess } from '../../test/helpers/processes.ts';
import { REPO_ROOT, ferryArgs } from '../../test/helpers/ferry-entry.ts';
import { pinned } from './pinning.ts';

export interface BenchServer {
  label: string;
  /** 127.0.0.1:PORT */
  host: string;
  url: string;
  /** The process that serves (taskset execs the server: the child itself). */
  servingPid: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

async function startOnFreePort(
  label: string,
  launch: (port: number) => Promise<ManagedProcess>,
): Promise<{ port: number; proc: ManagedProcess }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { port, proc: await launch(port) };
    } catch (err) {
      // Another process may have taken the port between freePort() and bind.
      if (attempt < 3 && String(err).includes('address already in use')) continue;
      throw new Error(`${label}: ${String(err)}`);
    }
  }
}

/** `node dist/scripts/ferry.js mirror` (call buildFerry() first) with registry.config.json's settings, log level warn. */
export async function startFerry(cpus: string | undefined): Promise<BenchServer> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
  const base = JSON.parse(await readFile(path.join(REPO_ROOT, 'registry.config.json'), 'utf8')) as Record<string, unknown>;
  delete base.$schema;
  const configPath = path.join(work, 'config.json');
  await writeFile(configPath, JSON.stringify({ ...base, log: { level: process.env.BENCH_FERRY_LOG ?? 'warn', format: 'json' } }));
  const { port, proc } = await startOnFreePort('ferry', (p) => {
    const { command, args } = pinned(cpus, process.execPath, [...ferryArgs(true), 'mirror', '--config', configPath]);
    return startProcess({
      name: 'bench-ferry',
      command,
      args,
      cwd: REPO_ROOT,
      env: { ...process.env, FERRY_LISTEN: `127.0.0.1:${p}`, FERRY_DATA_DIR: path.join(work, 'data'), NODE_ENV: 'production' },
      ready: { url: `http://127.0.0.1:${p}/v2/` },
      readyTimeoutMs: 30_000,
    });
  });
  const host = `127.0.0.1:${port}`;
  return {
    label: 'ferry',
    host,
    url: `http://${host}`,
    servingPid: proc.pid,
    process: proc,
    async stop() {
      await proc.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}

/** Debian's docker-registry (distribution 2.8), filesystem storage, log level warn, no access log. */
export async function startReference(cpus: string | undefined): Promise<BenchServer> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-ref-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const { port, proc } = await startOnFreePort('reference', async (p) => {
    const config = {
      version: '0.1',
      log: { level: 'warn', formatter: 'text', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: path.join(work, 'data') },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${p}`, secret: 'ferry-bench-secret' },
    };
    const configPath = path.join(work, 'config.yml');
    await writeFile(configPath, JSON.stringify(config, null, 2));
    const { command, args } = pinned(cpus, 'docker-registry', ['serve', configPath]);
    return startProcess({ name: 'bench-reference', command, args, env, ready: { url: `http://127.0.0.1:${p}/v2/` }, graceMs: 3000 });
  });
  const host = `127.0.0.1:${port}`;
  return {
    label: 'reference',
    host,
    url: `http://${host}`,
    servingPid: proc.pid,
    process: proc,
    async stop() {
      await proc.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}
