/**
 * Which config file a command uses: `--config`, then FERRY_CONFIG, then the system file of its
 * role (/etc/ferry/mirror.json, /etc/ferry/relay.json), then the embedded default. So an installed
 * ferry, run from any directory, uses the config (and the store) the service runs with.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEFAULT_CONFIG_FILE } from './load.ts';
import type { Config } from './schema.ts';

export type ConfigRole = 'mirror' | 'relay';

export const SYSTEM_CONFIG_FILES: Readonly<Record<ConfigRole, string>> = {
  mirror: '/etc/ferry/mirror.json',
  relay: '/etc/ferry/relay.json',
};

export interface ConfigChoice {
  file: string;
  /** Why this file: shown next to it, so the operator sees which rule picked it. */
  source: '--config' | 'FERRY_CONFIG' | 'system' | 'embedded default';
}

export interface LocateOptions {
  role?: ConfigRole;
  env?: NodeJS.ProcessEnv;
  /** The system file to look for (tests). */
  systemFile?: string;
  exists?: (file: string) => boolean;
}

export function locateConfig(flag: string | undefined, opts: LocateOptions = {}): ConfigChoice {
  const env = opts.env ?? process.env;
  if (flag !== undefined && flag !== '') return { file: resolve(flag), source: '--config' };
  if (env.FERRY_CONFIG) return { file: resolve(env.FERRY_CONFIG), source: 'FERRY_CONFIG' };
  const system = opts.systemFile ?? SYSTEM_CONFIG_FILES[opts.role ?? 'mirror'];
  if ((opts.exists ?? existsSync)(system)) return { file: system, source: 'system' };
  return { file: DEFAULT_CONFIG_FILE, source: 'embedded default' };
}

/** The one line every command prints (stderr) before it works: the config, why, and what it uses (`store DIR`). */
export function describeChoice(command: string, choice: ConfigChoice, uses: string): string {
  return `ferry ${command}: config ${choice.file} (${choice.source}), ${uses}`;
}

/** The URL a command on the mirror's host reaches the mirror at, from its `listen` (a wildcard address is reached on loopback). */
export function localMirrorUrl(config: Pick<Config, 'listen' | 'tls'>): string {
  const i = config.listen.lastIndexOf(':');
  const host = config.listen.slice(0, i);
  const port = config.listen.slice(i + 1);
  const reach = host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' || host === '::' ? '[::1]' : host;
  return `${config.tls ? 'https' : 'http'}://${reach}:${port}`;
}
