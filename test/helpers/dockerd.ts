/**
 * A private dockerd in temp dirs (its own data-root, exec-root, socket, pidfile, daemon.json and
 * containerd), so several can run at once beside any system daemon. vfs storage, no bridge, no
 * iptables: containers run with --network none.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { onExitSync, run, startProcess, type ManagedProcess, type RunOptions, type RunResult } from './processes.ts';

export interface DockerdOptions {
  /** daemon.json "registry-mirrors", e.g. ['http://127.0.0.1:4000']. */
  registryMirrors?: string[];
  /** daemon.json "insecure-registries" (127.0.0.0/8 is insecure already). */
  insecureRegistries?: string[];
  /** Extra daemon.json settings. */
  daemonConfig?: Record<string, unknown>;
  extraArgs?: string[];
  /** Name used for the log file; default 'dockerd'. */
  name?: string;
}

export interface Dockerd {
  /** unix:///.../docker.sock, for DOCKER_HOST */
  host: string;
  socketPath: string;
  dataRoot: string;
  execRoot: string;
  pid: number;
  logPath: string;
  process: ManagedProcess;
  /** Environment for a docker CLI aimed at this daemon, with its own (empty) CLI config dir. */
  env: NodeJS.ProcessEnv;
  /** Runs the docker CLI against this daemon; returns stdout, throws with stderr on failure. */
  docker(args: string[], opts?: RunOptions): Promise<string>;
  /** Same, but never throws. */
  dockerRaw(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Stops the daemon (SIGTERM, then SIGKILL), unmounts what it left, removes its dirs. */
  stop(): Promise<void>;
}

/** Mount points at or under `dir` (deepest first), from /proc/self/mountinfo. */
function mountsIn(info: string, dir: string): string[] {
  const decode = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return info.split('\n')
    .map((line) => decode(line.split(' ')[4] ?? ''))
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

async function mountsUnder(dir: string): Promise<string[]> {
  return mountsIn(await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''), dir);
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  // Short base path: the socket (and containerd's, under exec-root) must fit in 108 bytes.
  const base = await mkdtemp(path.join(os.tmpdir(), 'ferry-dockerd-'));
  const dataRoot = path.join(base, 'data');
  const execRoot = path.join(base, 'exec');
  const cliConfig = path.join(base, 'cli');
  for (const d of [dataRoot, execRoot, cliConfig]) mkdirSync(d);
  const socketPath = path.join(base, 'docker.sock');
  const configFile = path.join(base, 'daemon.json');
  // An explicit config file keeps /etc/docker/daemon.json (if any) out of the picture.
  await writeFile(configFile, JSON.stringify({
    ...(opts.registryMirrors ? { 'registry-mirrors': opts.registryMirrors } : {}),
    ...(opts.insecureRegistries ? { 'insecure-registries': opts.insecureRegistries } : {}),
    ...opts.daemonConfig,
  }));
  const host = `unix://${socketPath}`;
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: cliConfig };
  delete env.DOCKER_CONTEXT;
  delete env.DOCKER_TLS_VERIFY;
  delete env.DOCKER_CERT_PATH;

  // If the runner dies first, its exit hook has SIGKILLed dockerd: unmount and remove synchronously.
  const unregister = onExitSync(() => {
    for (const mp of mountsIn(readFileSync('/proc/self/mountinfo', 'utf8'), base)) spawnSync('umount', ['-l', mp]);
    rmSync(base, { recursive: true, force: true, maxRetries: 3 });
  });
  const cleanup = async (): Promise<void> => {
    for (const mp of await mountsUnder(base)) await run('umount', ['-l', mp]);
    await rm(base, { recursive: true, force: true, maxRetries: 3 });
    unregister();
  };

  let proc: ManagedProcess;
  try {
    proc = await startProcess({
      name: opts.name ?? 'dockerd',
      command: 'dockerd',
      args: [
        '--config-file', configFile,
        '--data-root', dataRoot,
        '--exec-root', execRoot,
        '-H', host,
        '--pidfile', path.join(base, 'docker.pid'),
        '--storage-driver', 'vfs',
        '--iptables=false',
        '--ip6tables=false',
        '--bridge=none',
        '--shutdown-timeout', '2',
        ...(opts.extraArgs ?? []),
      ],
      env,
      ready: { socketPath, httpPath: '/_ping' },
      readyTimeoutMs: 30_000,
      graceMs: 10_000,
    });
  } catch (err) {
    await cleanup();
    throw err;
  }

  const dockerRaw = (args: string[], o: RunOptions = {}): Promise<RunResult> =>
    run('docker', args, { timeoutMs: 120_000, ...o, env: { ...env, ...o.env } });
  let stopping: Promise<void> | undefined;
  return {
    host,
    socketPath,
    dataRoot,
    execRoot,
    pid: proc.pid,
    logPath: proc.logPath,
    process: proc,
    env,
    dockerRaw,
    async docker(args, o) {
      const res = await dockerRaw(args, o);
      if (res.code !== 0) throw new Error(`docker ${args.join(' ')}: exit ${res.code ?? res.signal}\n${res.stderr.trim()}`);
      return res.stdout;
    },
    stop() {
      stopping ??= (async () => {
        await proc.stop();
        await cleanup();
      })();
      return stopping;
    },
  };
}
