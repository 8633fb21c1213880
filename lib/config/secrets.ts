/**
 * Upstream credentials kept outside the config (passwordEnv, tokenEnv, tokenFile) are read when
 * a client for that upstream is built, not when the config is loaded: commands that never
 * contact an upstream (import, export, gc, config check) run without them, from a shell or cron.
 */
import { readFileSync } from 'node:fs';
import type { RelayEndpointConfig, S3StorageConfig, UpstreamConfig } from './schema.ts';
import { ConfigError } from './load.ts';
import { parseTokenFile } from '../relay/tokens.ts';

type TokenSettings = Pick<RelayEndpointConfig, 'token' | 'tokenEnv' | 'tokenFile'>;

function fromEnv(file: string, where: string, variable: string, env: NodeJS.ProcessEnv): string {
  const value = env[variable];
  if (value === undefined) {
    throw new ConfigError(file, `${where}: environment variable ${variable} is not set (the service gets it from its environment, e.g. a systemd drop-in)`);
  }
  return value;
}

/** A relay's token from its tokenEnv or tokenFile (first token line). */
function resolveToken<T extends TokenSettings>(file: string, at: T, where: string, env: NodeJS.ProcessEnv): T {
  if (at.token !== undefined) return at;
  if (at.tokenEnv) return { ...at, token: fromEnv(file, `${where}.tokenEnv`, at.tokenEnv, env) };
  if (!at.tokenFile) return at;
  let text: string;
  try {
    text = readFileSync(at.tokenFile, 'utf8');
  } catch (e) {
    throw new ConfigError(file, `${where}.tokenFile: cannot read ${at.tokenFile} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const token = parseTokenFile(text)[0];
  if (token === undefined) throw new ConfigError(file, `${where}.tokenFile: ${at.tokenFile} holds no token`);
  return { ...at, token };
}

/** The upstream's config with its secrets read (env, token files); a missing one is a ConfigError naming the key path. */
export function resolveSecrets(file: string, name: string, up: UpstreamConfig, env: NodeJS.ProcessEnv = process.env): UpstreamConfig {
  const where = `upstreams.${name}`;
  const out = resolveToken(file, { ...up }, where, env);
  if (up.passwordEnv && up.password === undefined) out.password = fromEnv(file, `${where}.passwordEnv`, up.passwordEnv, env);
  if (up.relays) out.relays = up.relays.map((r, i) => resolveToken(file, r, `${where}.relays.${i}`, env));
  return out;
}

/** Environment variables the config names that `env` lacks, as `upstreams.NAME[.relays.I].KEY: VAR` (config check notes them). */
export function missingSecrets(upstreams: Readonly<Record<string, UpstreamConfig>>, env: NodeJS.ProcessEnv = process.env): string[] {
  const missing: string[] = [];
  for (const [name, up] of Object.entries(upstreams)) {
    const check = (where: string, key: string, variable: string | undefined, given: unknown): void => {
      if (variable && given === undefined && env[variable] === undefined) missing.push(`${where}.${key}: ${variable}`);
    };
    check(`upstreams.${name}`, 'passwordEnv', up.passwordEnv, up.password);
    check(`upstreams.${name}`, 'tokenEnv', up.tokenEnv, up.token);
    up.relays?.forEach((r, i) => check(`upstreams.${name}.relays.${i}`, 'tokenEnv', r.tokenEnv, r.token));
  }
  return missing;
}

/** The keys ferry signs its object-store requests with (never logged, never in the config file). */
export interface StorageCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * The S3 store's credentials: from storage.credentialsFile (the AWS shared credentials format,
 * section storage.profile) when given, else from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
 * (AWS_SESSION_TOKEN optional). A missing one is a ConfigError naming the key path.
 */
export function resolveStorageCredentials(file: string, storage: Pick<S3StorageConfig, 'credentialsFile' | 'profile'>, env: NodeJS.ProcessEnv = process.env): StorageCredentials {
  if (storage.credentialsFile === undefined) {
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      const unset = [accessKeyId ? undefined : 'AWS_ACCESS_KEY_ID', secretAccessKey ? undefined : 'AWS_SECRET_ACCESS_KEY'].filter(Boolean).join(' and ');
      throw new ConfigError(file, `storage: ${unset} not set (give the service the bucket's keys in its environment, or name a file in storage.credentialsFile)`);
    }
    return { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
  }
  const where = 'storage.credentialsFile';
  let text: string;
  try {
    text = readFileSync(storage.credentialsFile, 'utf8');
  } catch (e) {
    throw new ConfigError(file, `${where}: cannot read ${storage.credentialsFile} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const section = parseIniSection(text, storage.profile);
  if (section === undefined) throw new ConfigError(file, `${where}: ${storage.credentialsFile} has no [${storage.profile}] section (storage.profile)`);
  const accessKeyId = section.get('aws_access_key_id');
  const secretAccessKey = section.get('aws_secret_access_key');
  if (!accessKeyId || !secretAccessKey) {
    throw new ConfigError(file, `${where}: [${storage.profile}] of ${storage.credentialsFile} needs aws_access_key_id and aws_secret_access_key`);
  }
  const sessionToken = section.get('aws_session_token');
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

/** One [section] of an INI file as key -> value (keys lower-cased; ; and # start comments). */
function parseIniSection(text: string, name: string): Map<string, string> | undefined {
  let current: Map<string, string> | undefined;
  let found: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (header) {
      current = header[1] === name ? (found ??= new Map()) : undefined;
      continue;
    }
    const eq = line.indexOf('=');
    if (current && eq > 0) current.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return found;
}
