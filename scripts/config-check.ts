/** `ferry config check`: validate a config file and print the effective config, secrets masked. */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { Command } from 'commander';
import { ConfigError, type LoadedConfig } from '../lib/config/load.ts';
import { missingSecrets } from '../lib/config/secrets.ts';
import { CONFIG_OPTION_HELP, commandConfig } from './command-config.ts';
import { HtpasswdError, parseHtpasswd } from '../server/auth/htpasswd.ts';

const SECRET_KEYS = new Set(['password', 'token', 'tokens']);

/** A deep copy with every secret replaced by "***" (and how many tokens there were). */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (SECRET_KEYS.has(key) && value !== undefined) {
    return Array.isArray(value) ? value.map(() => '***') : '***';
  }
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]));
  }
  return value;
}

/** What the schema cannot see: the files the config points at must exist and parse. */
export function checkReferencedFiles(cfg: LoadedConfig): void {
  const fail = (key: string, msg: string): never => { throw new ConfigError(cfg.file, `${key}: ${msg}`); };
  const read = (key: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      return fail(key, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  };
  if (cfg.auth) {
    try {
      const users = parseHtpasswd(read('auth.htpasswd', cfg.auth.htpasswd).toString('utf8'), cfg.auth.htpasswd);
      if (users.size === 0) fail('auth.htpasswd', `${cfg.auth.htpasswd} has no users`);
    } catch (e) {
      if (e instanceof HtpasswdError) fail('auth.htpasswd', e.message);
      throw e;
    }
  }
  if (cfg.tls) {
    const cert = read('tls.cert', cfg.tls.cert);
    const key = read('tls.key', cfg.tls.key);
    let x509: X509Certificate | undefined;
    try { x509 = new X509Certificate(cert); } catch (e) { fail('tls.cert', `${cfg.tls.cert} is not a PEM certificate (${(e as Error).message})`); }
    try {
      if (!x509?.checkPrivateKey(createPrivateKey(key))) fail('tls.key', `${cfg.tls.key} does not match the certificate ${cfg.tls.cert}`);
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      fail('tls.key', `${cfg.tls.key} is not a PEM private key (${(e as Error).message})`);
    }
  }
  for (const [name, up] of Object.entries(cfg.upstreams)) {
    [up, ...(up.relays ?? [])].forEach((at, i) => {
      const where = at === up ? `upstreams.${name}` : `upstreams.${name}.relays.${i - 1}`;
      if (at.caFile) read(`${where}.caFile`, at.caFile);
      if (at.tokenFile) read(`${where}.tokenFile`, at.tokenFile);
    });
  }
  if (cfg.relay?.tokenFile) read('relay.tokenFile', cfg.relay.tokenFile);
  if (cfg.storage.kind === 's3' && cfg.storage.credentialsFile) read('storage.credentialsFile', cfg.storage.credentialsFile);
}

export function configCommand(): Command {
  const config = new Command('config').description('Inspect the configuration');
  config
    .command('check')
    .description('Validate a config file (and the files it names) and print the effective config, secrets masked')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .option('-q, --quiet', 'print nothing when the config is valid')
    .addHelpText('after', `
Examples:
  ferry config check --config /etc/ferry/mirror.json
  FERRY_LISTEN=127.0.0.1:5000 ferry config check -c mirror.json   # environment overrides apply

Exit status: 0 when valid, 2 when not (the message names the file and the key path).`)
    .action((opts: { config?: string; quiet?: boolean }) => {
      const cfg = commandConfig('config check', opts.config, { quiet: opts.quiet === true });
      checkReferencedFiles(cfg);
      // Read only when a client is built (mirror, relay, prewarm through them): here a note, not an error.
      if (!opts.quiet) for (const m of missingSecrets(cfg.upstreams)) console.error(`ferry config check: note: ${m} is not set here; the mirror needs it in its environment`);
      if (!opts.quiet) {
        console.error(`ferry: ${cfg.file} is valid; effective config:`);
        console.log(JSON.stringify(maskSecrets(cfg), null, 2));
      }
    });
  return config;
}
