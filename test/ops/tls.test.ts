/**
 * The mirror over HTTPS (config tls.cert/tls.key) with a CA made by openssl: skopeo pushes and
 * inspects with TLS verification on, trusting only that CA (so Docker would need no
 * insecure-registries entry), refuses without it, and a reload picks up a new certificate.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { buildImage } from '../helpers/oci-image.ts';
import { run, runChecked } from '../helpers/processes.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from '../e2e/mirror-fixture.ts';

/** A CA and a server certificate for 127.0.0.1 signed by it; returns the file paths. */
async function makeCa(dir: string, name: string): Promise<{ ca: string; cert: string; key: string }> {
  const p = (f: string): string => join(dir, `${name}-${f}`);
  await runChecked('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', `/CN=ferry test CA ${name}`]);
  await runChecked('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=127.0.0.1']);
  const ext = p('ext.cnf');
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await runChecked('openssl', ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('server.crt'), '-days', '2', '-extfile', ext]);
  return { ca: p('ca.crt'), cert: p('server.crt'), key: p('server.key') };
}

function presentedCert(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '');
      s.end();
    });
    s.on('error', reject);
  });
}

describe('TLS on the mirror', function () {
  this.timeout(60_000);
  let dir: string;
  let certDir: string;
  let ferry: TestMirror;
  let paths: { ca: string; cert: string; key: string };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-tls-'));
    paths = await makeCa(dir, 'one');
    // skopeo's --cert-dir: *.crt files are the CAs it trusts.
    certDir = join(dir, 'certs.d');
    await mkdir(certDir);
    await copyFile(paths.ca, join(certDir, 'ca.crt'));
    ferry = await startTestMirror({ tls: { cert: paths.cert, key: paths.key } });
  });
  after(async () => {
    await ferry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes a push and serves an inspect from skopeo verifying TLS against the CA', async () => {
    const image = await buildImage({ layers: [50_000], seed: 'ops-tls' });
    await pushImage(image, ferry.host, 'lokolla/tls', 'v1', { extraArgs: ['--dest-tls-verify=true', '--dest-cert-dir', certDir] });
    const out = await runChecked('skopeo', ['--insecure-policy', 'inspect', '--raw', '--tls-verify=true', '--cert-dir', certDir, `docker://${ferry.host}/lokolla/tls:v1`]);
    assert.equal(JSON.parse(out).schemaVersion, 2);
  });

  it('is refused by skopeo that does not trust the CA (unknown authority)', async () => {
    const res = await run('skopeo', ['--insecure-policy', 'inspect', '--raw', '--tls-verify=true', `docker://${ferry.host}/lokolla/tls:v1`], { timeoutMs: 30_000 });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /certificate signed by unknown authority|x509/);
  });

  it('serves a new certificate after reloadTls (what SIGHUP calls), on new connections', async () => {
    const port = Number(ferry.host.split(':')[1]);
    const before = await presentedCert(port);
    assert.equal(before, new X509Certificate(await readFile(paths.cert)).fingerprint256);
    const two = await makeCa(dir, 'two');
    await copyFile(two.cert, paths.cert);
    await copyFile(two.key, paths.key);
    assert.equal(ferry.mirror.reloadTls(), true);
    const after = await presentedCert(port);
    assert.equal(after, new X509Certificate(await readFile(two.cert)).fingerprint256);
    assert.notEqual(after, before);
  });
});
