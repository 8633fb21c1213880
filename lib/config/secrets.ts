/**
 * Upstream credentials kept outside the config (passwordEnv, tokenEnv, tokenFile) are read when
 * a client for that upstream is built, not when the config is loaded: commands that never
 * contact an upstream (import, export, gc, config check) run without them, from a shell or cron.
 */
import { readFileSync } from 'node:fs';
import type { RelayEndpointConfig, UpstreamConfig } from './schema.ts';
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
