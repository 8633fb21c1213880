/**
 * Child processes for end-to-end tests: spawn, wait until ready, log to test-output/, stop by PID.
 * Every process started here is also killed by an exit hook, so a failing or aborted test run
 * leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createConnection, createServer } from 'node:net';
import path from 'node:path';

export const TEST_OUTPUT_DIR = path.resolve(import.meta.dirname, '../../test-output');

export type Readiness =
  | { port: number; host?: string }
  | { url: string; /** statuses that count as ready; default: any HTTP answer */ statuses?: number[] }
  | { socketPath: string; /** HTTP path to GET over the unix socket; default '/_ping' */ httpPath?: string }
  | { check: () => Promise<boolean> };

export interface StartOptions {
  /** Short name used in the log file name and in error messages. */
  name: string;
  command: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  ready?: Readiness;
  readyTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL on stop(); default 5000. */
  graceMs?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Last output lines (stdout and stderr), for error messages. */
  outputTail(): string;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. Idempotent. */
  stop(graceMs?: number): Promise<ExitInfo>;
}

const live = new Map<number, ManagedProcess>();
const exitCleanups = new Set<() => void>();
let hooked = false;
let logCounter = 0;

function killAllNow(): void {
  for (const pid of live.keys()) killGroup(pid, 'SIGKILL');
  for (const fn of exitCleanups) {
    try {
      fn();
    } catch {
      // best effort: the runner is going away
    }
  }
  exitCleanups.clear();
}

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  // 'exit' handlers must be synchronous: SIGKILL each process group, then the sync cleanups.
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllNow();
      // Re-raise with the default disposition so the runner still dies of the signal, unless
      // someone else (the test runner) handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/**
 * Registers a synchronous cleanup (unmount, remove temp dirs) to run if the runner exits before
 * the owner cleaned up; returns a function that unregisters it (call it from the normal stop()).
 */
export function onExitSync(fn: () => void): () => void {
  installExitHook();
  exitCleanups.add(fn);
  return () => exitCleanups.delete(fn);
}

/** Signals the whole process group (the child is a group leader), falling back to the PID alone. */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

const TAIL_BYTES = 16 * 1024;

export async function startProcess(opts: StartOptions): Promise<ManagedProcess> {
  installExitHook();
  mkdirSync(TEST_OUTPUT_DIR, { recursive: true });
  const logPath = path.join(TEST_OUTPUT_DIR, `${opts.name}-${process.pid}-${++logCounter}.log`);
  const log = createWriteStream(logPath);
  log.write(`$ ${opts.command} ${(opts.args ?? []).join(' ')}\n`);
  // detached: the child leads its own process group, so helpers it forks (containerd) die with it.
  const child = spawn(opts.command, opts.args ?? [], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let tail = '';
  const onData = (chunk: Buffer): void => {
    log.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);

  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      if (child.pid !== undefined) live.delete(child.pid);
      resolve({ code, signal });
    });
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  exited.then(() => log.end(), () => log.end());

  const pid = child.pid;
  if (pid === undefined) {
    const err = await spawnError;
    throw new Error(`${opts.name}: cannot start ${opts.command}: ${err.message}`);
  }

  let stopping: Promise<ExitInfo> | undefined;
  const managed: ManagedProcess = {
    name: opts.name,
    pid,
    logPath,
    child,
    exited,
    outputTail: () => tail,
    stop(graceMs = opts.graceMs ?? 5000) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        killGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
        const info = await exited;
        clearTimeout(timer);
        // Helpers in the group (if any outlived the leader) must not survive it.
        killGroup(pid, 'SIGKILL');
        return info;
      })();
      return stopping;
    },
  };
  live.set(pid, managed);

  if (opts.ready) {
    try {
      await waitUntilReady(opts.ready, opts.readyTimeoutMs ?? 15_000, exited, opts.name);
    } catch (err) {
      await managed.stop(1000);
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`${msg}\n--- ${opts.name} output (${logPath}) ---\n${tail.slice(-4000)}`);
    }
  }
  return managed;
}

async function waitUntilReady(ready: Readiness, timeoutMs: number, exited: Promise<ExitInfo>, name: string): Promise<void> {
  const check = readinessCheck(ready);
  let exitInfo: ExitInfo | undefined;
  void exited.then((info) => { exitInfo = info; });
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    if (exitInfo) throw new Error(`${name} exited before it was ready (code ${exitInfo.code}, signal ${exitInfo.signal})`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${name} not ready after ${timeoutMs} ms`);
    await sleep(delay);
    delay = Math.min(delay * 2, 200);
  }
}

function readinessCheck(ready: Readiness): () => Promise<boolean> {
  if ('check' in ready) return ready.check;
  if ('port' in ready) return () => portAnswers(ready.port, ready.host ?? '127.0.0.1');
  if ('url' in ready) return () => httpAnswers({ url: ready.url }, ready.statuses);
  return () => httpAnswers({ socketPath: ready.socketPath, path: ready.httpPath ?? '/_ping' }, [200]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls fn until it returns true; throws after timeoutMs. */
export async function waitFor(fn: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await Promise.resolve(fn()).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export function portAnswers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ port, host });
    sock.setTimeout(1000);
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('timeout', () => { sock.destroy(); resolve(false); });
    sock.once('error', () => resolve(false));
  });
}

function httpAnswers(target: { url: string } | { socketPath: string; path: string }, statuses?: number[]): Promise<boolean> {
  return new Promise((resolve) => {
    const req = 'url' in target
      ? httpRequest(target.url, { timeout: 2000 })
      : httpRequest({ socketPath: target.socketPath, path: target.path, timeout: 2000 });
    req.once('response', (res) => {
      res.resume();
      resolve(statuses ? statuses.includes(res.statusCode ?? 0) : true);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end();
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  timeoutMs?: number;
}

/** Runs a command to completion, never throwing on a non-zero exit. */
export function run(command: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.once('error', (e) => { if (timer) clearTimeout(timer); reject(new Error(`cannot run ${command}: ${e.message}`)); });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code, signal });
    });
    child.stdin.on('error', () => { /* the command may not read its input */ });
    child.stdin.end(opts.input);
  });
}

/** Runs a command and returns stdout; throws with stderr on failure. */
export async function runChecked(command: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const res = await run(command, args, opts);
  if (res.code !== 0) {
    const why = res.signal ? `killed by ${res.signal}${opts.timeoutMs ? ` (timeout ${opts.timeoutMs} ms?)` : ''}` : `exit ${res.code}`;
    throw new Error(`${command} ${args.join(' ')}: ${why}\n${res.stderr.trim() || res.stdout.trim()}`);
  }
  return res.stdout;
}
