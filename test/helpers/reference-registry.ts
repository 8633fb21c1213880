/**
 * The reference registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1 with a temp
 * storage dir: no auth, htpasswd Basic auth, token auth, or pull-through proxy mode.
 */
import bcrypt from 'bcryptjs';
import { rmSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, onExitSync, startProcess, type ManagedProcess } from './processes.ts';

export interface TokenAuthOptions {
  /** The token endpoint, e.g. TokenServer.realm. */
  realm: string;
  issuer: string;
  /** PEM bundle that signs tokens, e.g. TokenServer.certPath. */
  certPath: string;
  /** The registry's service name (the tokens' audience); default 'ferry-test-registry'. */
  service?: string;
}

export interface ReferenceRegistryOptions {
  /** Basic auth with these users (user -> password), stored as a bcrypt htpasswd file. */
  htpasswd?: Record<string, string>;
  token?: TokenAuthOptions;
  /** Pull-through cache mode: distribution forwards misses to this upstream (and refuses pushes). */
  proxy?: { remoteUrl: string; username?: string; password?: string };
  /** storage.delete.enabled; default true so tests can delete blobs and manifests. */
  deleteEnabled?: boolean;
  /** Use (and keep) this storage dir instead of a temp one. */
  dataDir?: string;
  /** Name used for the log file; default 'registry'. */
  name?: string;
  /** Top-level config sections merged over the generated ones (e.g. { notifications: ... }). */
  extraConfig?: Record<string, unknown>;
}

export interface ReferenceRegistry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT (for docker:// references and image names) */
  host: string;
  port: number;
  dataDir: string;
  /** The service name the registry expects in token audiences. */
  service: string;
  logPath: string;
  process: ManagedProcess;
  /** Stops the registry and removes its temp dirs (not a caller-supplied dataDir). */
  stop(): Promise<void>;
}

export const DEFAULT_SERVICE = 'ferry-test-registry';

/** One htpasswd line per user, bcrypt at the lowest cost: distribution checks it on every request. */
export function htpasswdLines(users: Record<string, string>): string {
  return Object.entries(users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 4)}\n`).join('');
}

export async function startReferenceRegistry(opts: ReferenceRegistryOptions = {}): Promise<ReferenceRegistry> {
  if (opts.htpasswd && opts.token) throw new Error('choose htpasswd or token auth, not both');
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-registry-'));
  const unregister = onExitSync(() => rmSync(work, { recursive: true, force: true }));
  const dataDir = opts.dataDir ?? path.join(work, 'data');
  await mkdir(dataDir, { recursive: true });
  const service = opts.token?.service ?? DEFAULT_SERVICE;

  let auth: Record<string, unknown> | undefined;
  if (opts.htpasswd) {
    const file = path.join(work, 'htpasswd');
    await writeFile(file, htpasswdLines(opts.htpasswd));
    auth = { htpasswd: { realm: 'ferry-test', path: file } };
  } else if (opts.token) {
    auth = { token: { realm: opts.token.realm, service, issuer: opts.token.issuer, rootcertbundle: opts.token.certPath } };
  }
  // Registry settings come from the file only: no REGISTRY_* variables from the environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = {
      version: '0.1',
      log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: dataDir },
        delete: { enabled: opts.deleteEnabled ?? true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${port}`, secret: 'ferry-test-secret', headers: { 'X-Content-Type-Options': ['nosniff'] } },
      ...(auth ? { auth } : {}),
      ...(opts.proxy ? { proxy: { remoteurl: opts.proxy.remoteUrl, username: opts.proxy.username, password: opts.proxy.password } } : {}),
      ...opts.extraConfig,
    };
    const configPath = path.join(work, 'config.yml');
    // JSON is YAML, and distribution reads its config with a YAML parser.
    await writeFile(configPath, JSON.stringify(config, null, 2));
    let proc: ManagedProcess;
    try {
      proc = await startProcess({
        name: opts.name ?? 'registry',
        command: 'docker-registry',
        args: ['serve', configPath],
        env,
        ready: { url: `http://127.0.0.1:${port}/v2/` },
        readyTimeoutMs: 15_000,
        graceMs: 3000,
      });
    } catch (err) {
      // Another process may have taken the port between freePort() and bind: try another.
      if (attempt < 3 && String(err).includes('address already in use')) continue;
      await rm(work, { recursive: true, force: true });
      unregister();
      throw err;
    }
    const host = `127.0.0.1:${port}`;
    return {
      url: `http://${host}`,
      host,
      port,
      dataDir,
      service,
      logPath: proc.logPath,
      process: proc,
      async stop() {
        await proc.stop();
        await rm(work, { recursive: true, force: true });
        unregister();
      },
    };
  }
}
