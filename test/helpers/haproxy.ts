/**
 * Debian's haproxy in front of N local backends (ferry replicas), as a site would run it before
 * its replicas: round robin, health checks on GET /v2/ (200 or 401 is a live registry), a server
 * that fails two checks in a row taken out, a request whose connection was refused sent to
 * another server (`option redispatch`). The config is generated into a temp dir; haproxy runs in
 * the foreground (-db) and is stopped by PID. The admin socket tells the servers' states.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, onExitSync, startProcess, waitFor, type ManagedProcess } from './processes.ts';

export interface HaproxyBackend {
  port: number;
  host?: string;
}

export interface HaproxyOptions {
  backends: HaproxyBackend[];
  /** 'roundrobin' (default) or 'leastconn' (long blob streams spread better). */
  balance?: 'roundrobin' | 'leastconn';
  /** Path of the health check; default '/v2/'. */
  healthPath?: string;
  /** Time between health checks of a server; default 200 ms (a dead replica is out within ~0.5 s). */
  checkIntervalMs?: number;
  /** Idle time allowed on either side of a proxied request; default 5 min (a blob stream on a slow link). */
  idleTimeoutMs?: number;
}

export type ServerState = 'UP' | 'DOWN' | 'MAINT' | 'NOLB' | string;

export interface Haproxy {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT */
  host: string;
  port: number;
  /** Server names in backend order: r0, r1, ... */
  servers: string[];
  process: ManagedProcess;
  /** Each server's state as haproxy's health checks see it now. */
  states(): Promise<Record<string, ServerState>>;
  /** Resolves once `server` is in `state` (e.g. 'DOWN' after its replica was killed). */
  waitForState(server: string, state: ServerState, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The haproxy.cfg for these options, listening on 127.0.0.1:port. Pure. */
export function haproxyConfig(opts: HaproxyOptions, port: number, adminSocket: string): string {
  const inter = opts.checkIntervalMs ?? 200;
  const idle = opts.idleTimeoutMs ?? 300_000;
  const servers = opts.backends.map((b, i) => `  server r${i} ${b.host ?? '127.0.0.1'}:${b.port} check`);
  return [
    'global',
    `  stats socket ${adminSocket} mode 600 level admin`,
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  option httplog',
    '  timeout connect 2s',
    // Without it a check times out after `inter` (200 ms here): a replica whose event loop is busy
    // that long on a loaded machine was taken out, and with one replica every request got 503.
    '  timeout check 2s',
    `  timeout client ${idle}ms`,
    `  timeout server ${idle}ms`,
    '  retries 2',
    '  option redispatch',
    'frontend registry',
    `  bind 127.0.0.1:${port}`,
    '  default_backend replicas',
    'backend replicas',
    `  balance ${opts.balance ?? 'roundrobin'}`,
    `  option httpchk GET ${opts.healthPath ?? '/v2/'}`,
    '  http-check expect rstatus ^(200|401)$',
    `  default-server inter ${inter}ms fastinter ${inter}ms downinter ${inter}ms fall 2 rise 1`,
    ...servers,
    '',
  ].join('\n');
}

export async function startHaproxy(opts: HaproxyOptions): Promise<Haproxy> {
  if (opts.backends.length === 0) throw new Error('startHaproxy: no backends');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-haproxy-'));
  const unhook = onExitSync(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const adminSocket = path.join(dir, 'admin.sock');
  const cfg = path.join(dir, 'haproxy.cfg');
  await writeFile(cfg, haproxyConfig(opts, port, adminSocket));
  let proc: ManagedProcess;
  try {
    proc = await startProcess({ name: 'haproxy', command: 'haproxy', args: ['-db', '-f', cfg], ready: { port }, graceMs: 2000 });
  } catch (err) {
    unhook();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const servers = opts.backends.map((_, i) => `r${i}`);
  const states = async (): Promise<Record<string, ServerState>> => parseStates(await adminCommand(adminSocket, 'show stat'));
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    servers,
    process: proc,
    states,
    waitForState: (server, state, timeoutMs = 5000) =>
      waitFor(async () => (await states())[server]?.startsWith(state) ?? false, timeoutMs, `haproxy server ${server} ${state}`),
    async stop() {
      await proc.stop();
      unhook();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Server states from `show stat` CSV (`# pxname,svname,...,status,...`). */
function parseStates(csv: string): Record<string, ServerState> {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = (lines.shift() ?? '').replace(/^# /, '').split(',');
  const px = header.indexOf('pxname');
  const sv = header.indexOf('svname');
  const st = header.indexOf('status');
  const out: Record<string, ServerState> = {};
  for (const line of lines) {
    const f = line.split(',');
    if (f[px] !== 'replicas' || f[sv] === 'BACKEND' || f[sv] === 'FRONTEND') continue;
    out[f[sv] as string] = f[st] as string;
  }
  return out;
}

function adminCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    const chunks: Buffer[] = [];
    sock.setTimeout(2000, () => sock.destroy(new Error(`haproxy admin socket: no answer to ${command}`)));
    sock.once('connect', () => sock.end(`${command}\n`));
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.once('error', reject);
    sock.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}
