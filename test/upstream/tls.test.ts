import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { UpstreamUnavailableError } from '../../lib/upstream/errors.ts';
import { runChecked } from '../helpers/processes.ts';
import { testClient } from './http-server.ts';
import { toRegistryError } from '../../server/errors.ts';

describe('UpstreamClient over TLS with a private CA (caFile)', () => {
  let dir: string;
  let server: Server;
  let url: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-upstream-tls-'));
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    await runChecked('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=ferry-test-relay', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    server = createServer({ key: await readFile(key), cert: await readFile(cert) }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('trusts the certificate of the CA in caFile', async () => {
    const client = testClient(url, { kind: 'relay', token: 'relay-token-0123456789', caFile: path.join(dir, 'cert.pem') });
    await client.ping();
    await client.close();
  });

  it('refuses an unknown certificate: UpstreamUnavailableError, not retried, UNAVAILABLE at the boundary', async () => {
    const client = testClient(url, { retries: 3 });
    const started = Date.now();
    const err = await client.ping().catch((e: unknown) => e);
    assert.ok(err instanceof UpstreamUnavailableError, String(err));
    assert.match(err.message, /self[- ]signed/i);
    assert.equal(toRegistryError(err).code, 'UNAVAILABLE');
    assert.ok(Date.now() - started < 1000, 'a certificate error is not retried');
    await client.close();
  });
});
