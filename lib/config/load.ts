/** Loads, validates and resolves a config file; every error names the file and the key path. */
import { OperatorError } from '../operator-error.ts';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import { projectFile } from '../project-files.ts';
import { configSchema, type Config } from './schema.ts';
import { checkRewriteRules } from '../rewrite/pattern.ts';
import { closest, knownKeys } from './suggest.ts';
import { describeJsonError } from './json-position.ts';

export const DEFAULT_CONFIG_FILE = projectFile('registry.config.json');

export class ConfigError extends OperatorError {
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: ${message}`, 'config');
    this.name = 'ConfigError';
    this.file = file;
  }
}

export interface LoadedConfig extends Config {
  /** Absolute path of the file it came from. */
  file: string;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(issue.path);
    const keys = issue.keys.map((k) => {
      const hint = closest(k, known);
      return `${where === '(top level)' ? k : `${where}.${k}`}${hint ? ` (did you mean ${hint}?)` : ''}`;
    });
    return `unknown key ${keys.join(', ')}`;
  }
  return `${where}: ${issue.message}`;
}

/** Keys renamed in a release, still accepted: [section, old key, new key]. */
const RENAMED_KEYS: ReadonlyArray<readonly [string, string, string]> = [
  ['transfer', 'fillDeadlineSeconds', 'deadlineSeconds'],
];

/** The config with renamed keys under their new names; one warning line per old key found. */
function renameOldKeys(raw: unknown, file: string, warn: (line: string) => void): unknown {
  if (!isObject(raw)) return raw;
  let out = raw;
  for (const [section, from, to] of RENAMED_KEYS) {
    const sec = out[section];
    if (!isObject(sec) || !(from in sec)) continue;
    if (to in sec) throw new ConfigError(file, `${section}.${from}: renamed to ${section}.${to}, which is also set; keep only ${section}.${to}`);
    const { [from]: value, ...rest } = sec;
    out = { ...out, [section]: { ...rest, [to]: value } };
    warn(`${file}: ${section}.${from} is deprecated, rename it to ${section}.${to}`);
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function warnOnStderr(line: string): void {
  process.stderr.write(`ferry: warning: ${line}\n`);
}

/**
 * Validates a parsed object; `file` is only for messages and relative paths. `warn` gets one line
 * per deprecated key (stderr by default).
 */
export function parseConfig(raw: unknown, file: string, env: NodeJS.ProcessEnv = process.env, warn: (line: string) => void = warnOnStderr): LoadedConfig {
  const result = configSchema.safeParse(renameOldKeys(raw, file, warn));
  if (!result.success) {
    throw new ConfigError(file, result.error.issues.map(describeIssue).join('; '));
  }
  const cfg = result.data;
  if (env.FERRY_LISTEN) {
    const r = configSchema.shape.listen.safeParse(env.FERRY_LISTEN);
    if (!r.success) throw new ConfigError(file, `FERRY_LISTEN: ${r.error.issues[0]?.message ?? 'invalid'}`);
    cfg.listen = r.data;
  }
  if (env.FERRY_DATA_DIR) cfg.dataDir = env.FERRY_DATA_DIR;
  const base = dirname(file);
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  cfg.dataDir = abs(cfg.dataDir);
  if (cfg.tls) cfg.tls = { cert: abs(cfg.tls.cert), key: abs(cfg.tls.key) };
  if (cfg.auth) cfg.auth = { ...cfg.auth, htpasswd: abs(cfg.auth.htpasswd) };
  if (cfg.relay?.tokenFile) cfg.relay.tokenFile = abs(cfg.relay.tokenFile);
  if (cfg.storage.kind === 's3' && cfg.storage.credentialsFile) cfg.storage.credentialsFile = abs(cfg.storage.credentialsFile);
  // Secrets (passwordEnv, tokenEnv, tokenFile) are read when a client is built: lib/config/secrets.ts.
  for (const up of Object.values(cfg.upstreams)) {
    for (const at of [up, ...(up.relays ?? [])]) {
      if (at.caFile) at.caFile = abs(at.caFile);
      if (at.tokenFile) at.tokenFile = abs(at.tokenFile);
    }
  }
  if (cfg.defaultUpstream !== undefined && !(cfg.defaultUpstream in cfg.upstreams)) {
    throw new ConfigError(file, `defaultUpstream: "${cfg.defaultUpstream}" is not a key of upstreams (${Object.keys(cfg.upstreams).join(', ') || 'none'})`);
  }
  cfg.rewrite.forEach((rule, i) => {
    if (rule.upstream !== undefined && !(rule.upstream in cfg.upstreams)) {
      throw new ConfigError(file, `rewrite.${i}.upstream: "${rule.upstream}" is not a key of upstreams (${Object.keys(cfg.upstreams).join(', ') || 'none'})`);
    }
    if (rule.local === undefined && rule.upstream === undefined) {
      throw new ConfigError(file, `rewrite.${i}: a rule needs local, upstream or both`);
    }
  });
  const ruleProblems = checkRewriteRules(cfg.rewrite);
  if (ruleProblems.length > 0) throw new ConfigError(file, ruleProblems.join('; '));
  for (const name of cfg.relay?.allow ?? []) {
    if (!(name in cfg.upstreams)) throw new ConfigError(file, `relay.allow: "${name}" is not a key of upstreams`);
  }
  if (cfg.transfer.minConnections > cfg.transfer.maxConnections) {
    throw new ConfigError(file, 'transfer.minConnections: must not exceed transfer.maxConnections');
  }
  return { ...cfg, file };
}

/** Reads and validates a config file (the embedded default when none is given). */
export function loadConfig(file: string = DEFAULT_CONFIG_FILE, env: NodeJS.ProcessEnv = process.env, warn: (line: string) => void = warnOnStderr): LoadedConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new ConfigError(abs, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(abs, `not valid JSON: ${describeJsonError(text, (e as Error).message)}`);
  }
  return parseConfig(raw, abs, env, warn);
}
