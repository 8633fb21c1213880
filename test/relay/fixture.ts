/** A ferry relay in-process on 127.0.0.1, a CA and certificates from openssl, and small HTTP helpers. */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { parseConfig, type LoadedConfig } from '../../lib/config/load.ts';
import type { ConfigInput } from '../../lib/config/schema.ts';
import { createLogger, silentLogger } from '../../lib/log/logger.ts';
import { startRelay, type RelayDeps, type RunningRelay } from '../../server/relay.ts';
import { runChecked } from '../helpers/processes.ts';

export interface TestRelay {
  relay: RunningRelay;
  config: LoadedConfig;
  /** 127.0.0.1:port */
  host: string;
  port: number;
  url: string;
  dataDir: string;
  /** Stops; the data dir stays with keepData (to start again on it). */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export interface StartRelayOptions {
  dataDir?: string;
  /** Default 0 (any free port). */
  port?: number;
  deps?: RelayDeps;
}

export async function startTestRelay(config: Omit<ConfigInput, 'listen' | 'dataDir'>, opts: StartRelayOptions = {}): Promise<TestRelay> {
  const dir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'ferry-relay-')));
  const loaded = parseConfig({ ...config, listen: `127.0.0.1:${opts.port ?? 0}`, dataDir: dir }, join(dir, 'relay.config.json'), {});
  const logger = process.env.FERRY_TEST_LOG ? createLogger({ level: process.env.FERRY_TEST_LOG, format: 'json' }) : silentLogger;
  const relay = await startRelay(loaded, { logger, ...opts.deps });
  const port = Number(relay.address.slice(relay.address.lastIndexOf(':') + 1));
  return {
    relay,
    config: loaded,
    host: relay.address,
    port,
    url: `${loaded.tls ? 'https' : 'http'}://${relay.address}`,
    dataDir: dir,
    async stop(o = {}) {
      await relay.close();
      if (!o.keepData) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TlsFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A CA, and a server certificate for 127.0.0.1 and localhost signed by it (`name` goes in the CN). */
export async function makeTlsFiles(dir: string, name = 'ferry-relay-test'): Promise<TlsFiles> {
  const f = (n: string): string => join(dir, n);
  const ossl = (args: string[]): Promise<string> => runChecked('openssl', args);
  await ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=ferry test CA']);
  await issueServerCert({ dir, caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key') }, name);
  return { dir, caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key') };
}

/** (Re)writes the server certificate and key in place, signed by the CA of `tls`, with this CN. */
export async function issueServerCert(tls: TlsFiles, name: string): Promise<void> {
  const f = (n: string): string => join(tls.dir, n);
  const ossl = (args: string[]): Promise<string> => runChecked('openssl', args);
  await ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${tls.keyFile}.new`, '-out', f('server.csr'), '-subj', `/CN=${name}`]);
  await writeFile(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await ossl(['x509', '-req', '-in', f('server.csr'), '-CA', tls.caFile, '-CAkey', f('ca.key'), '-CAcreateserial', '-out', `${tls.certFile}.new`, '-days', '2', '-extfile', f('ext.cnf')]);
  await rename(`${tls.keyFile}.new`, tls.keyFile);
  await rename(`${tls.certFile}.new`, tls.certFile);
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request; the body read whole. */
export async function call(url: string, opts: { method?: Dispatcher.HttpMethod; token?: string; headers?: Record<string, string>; body?: string; dispatcher?: Dispatcher } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const res = await request(url, {
    method: opts.method ?? 'GET',
    headers,
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

/** The OCI error code of a JSON error body. */
export function errorCode(a: Answer): string | undefined {
  try {
    return (JSON.parse(a.body.toString('utf8')) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}
