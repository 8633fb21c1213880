import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runChecked } from '../helpers/processes.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { pullWithDockerSdk } from '../helpers/docker-sdk.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTokenServer } from '../helpers/token-server.ts';

describe('helpers: private dockerd and the Docker SDK', function () {
  this.timeout(90_000);
  let registry: ReferenceRegistry;
  let image: BuiltImage;
  let dockerImage: BuiltImage;
  const daemons: Dockerd[] = [];

  before(async () => {
    registry = await startReferenceRegistry({ htpasswd: { kolla: 'deploy' } });
    const creds = { destCreds: { username: 'kolla', password: 'deploy' } };
    image = await buildImage({ layers: [200_000], seed: 'selftest-dockerd', runnable: { message: 'ferry selftest says hello' } });
    dockerImage = await buildImage({ layers: [1000, 50_000], seed: 'selftest-dockerd-v2s2', format: 'docker', runnable: true });
    await pushImage(image, registry.host, 'selftest/hello', 'v1', creds);
    await pushImage(dockerImage, registry.host, 'kolla/base', 'zed', creds);
    // Two daemons at once: tests will need a client daemon beside another.
    daemons.push(...await Promise.all([startDockerd({ name: 'dockerd-a' }), startDockerd({ name: 'dockerd-b' })]));
  });
  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await registry?.stop();
  });

  it('runs two daemons side by side, each with its own socket and storage', async () => {
    const [a, b] = daemons;
    assert.ok(a && b);
    assert.notEqual(a.socketPath, b.socketPath);
    assert.match(await a.docker(['version', '--format', '{{.Server.Version}}']), /^\d+\.\d+/);
    const rootA = (await a.docker(['info', '--format', '{{.DockerRootDir}}'])).trim();
    const rootB = (await b.docker(['info', '--format', '{{.DockerRootDir}}'])).trim();
    assert.equal(rootA, a.dataRoot);
    assert.equal(rootB, b.dataRoot);
  });

  it('pulls an OCI image with docker login and runs it with no network', async () => {
    const d = daemons[0];
    assert.ok(d);
    await d.docker(['login', '-u', 'kolla', '--password-stdin', registry.host], { input: 'deploy' });
    const ref = `${registry.host}/selftest/hello:v1`;
    const pullOut = await d.docker(['pull', ref]);
    assert.match(pullOut, new RegExp(`Digest: ${image.manifestDigest}`));
    const out = await d.docker(['run', '--rm', '--network', 'none', ref]);
    assert.equal(out, image.runOutput);
    assert.equal(out, 'ferry selftest says hello\n');
    const id = (await d.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
    assert.equal(id, image.configDigest);
  });

  it('pulls with the Docker SDK as Kolla does, reporting the digest and every layer', async () => {
    const d = daemons[1];
    assert.ok(d);
    const summary = await pullWithDockerSdk({
      socketPath: d.socketPath,
      repository: `${registry.host}/kolla/base`,
      tag: 'zed',
      auth: { username: 'kolla', password: 'deploy' },
    });
    assert.equal(summary.error, null);
    assert.equal(summary.ok, true);
    assert.equal(summary.digest, dockerImage.manifestDigest);
    assert.equal(Object.keys(summary.layers).length, dockerImage.layers.length);
    assert.ok(Object.values(summary.layers).every((s) => s === 'Pull complete'), JSON.stringify(summary.layers));
    assert.equal(await d.docker(['run', '--rm', '--network', 'none', `${registry.host}/kolla/base:zed`]), dockerImage.runOutput);
  });

  it('reports a failed SDK pull through the error key', async () => {
    const d = daemons[1];
    assert.ok(d);
    const summary = await pullWithDockerSdk({ socketPath: d.socketPath, repository: `${registry.host}/kolla/base`, tag: 'no-such-tag' });
    assert.equal(summary.ok, false);
    assert.match(summary.error ?? '', /no basic auth credentials|unauthorized|not found/i);
  });

  it('pulls from a token-auth registry, anonymously and after docker login', async () => {
    const tokens = await startTokenServer({ users: { kolla: 'deploy' }, anonymousPull: true });
    const reg = await startReferenceRegistry({ name: 'registry-token', token: { realm: tokens.realm, issuer: tokens.issuer, certPath: tokens.certPath } });
    try {
      await pushImage(image, reg.host, 'selftest/token', 'v1', { destCreds: { username: 'kolla', password: 'deploy' } });
      const d = daemons[1];
      assert.ok(d);
      tokens.reset();
      await d.docker(['pull', `${reg.host}/selftest/token:v1`]);
      assert.ok(tokens.requests.some((r) => r.user === undefined && r.granted.some((g) => g.name === 'selftest/token' && g.actions.includes('pull'))));
      await d.docker(['rmi', `${reg.host}/selftest/token:v1`]);
      await d.docker(['login', '-u', 'kolla', '--password-stdin', reg.host], { input: 'deploy' });
      tokens.reset();
      await d.docker(['pull', `${reg.host}/selftest/token:v1`]);
      assert.ok(tokens.requests.some((r) => r.user === 'kolla'), JSON.stringify(tokens.requests));
    } finally {
      await reg.stop();
      await tokens.close();
    }
  });

  it('uses registry-mirrors from its daemon.json, and removes its directories and mounts when stopped', async () => {
    const open = await startReferenceRegistry({ name: 'registry-open' });
    try {
      await pushImage(image, open.host, 'library/mirrored', 'v1');
      const extra = await startDockerd({ name: 'dockerd-c', registryMirrors: [open.url] });
      try {
        // A Docker Hub name: only the mirror can answer it here.
        await extra.docker(['pull', 'mirrored:v1']);
        assert.equal(await extra.docker(['run', '--rm', '--network', 'none', 'mirrored:v1']), image.runOutput);
      } finally {
        await extra.stop();
      }
      for (const dir of [extra.dataRoot, extra.execRoot]) assert.equal(existsSync(dir), false, dir);
      assert.notEqual(extra.process.child.exitCode ?? extra.process.child.signalCode, null);
    } finally {
      await open.stop();
    }
  });

  it('leaves no daemon, mount or directory behind when the runner exits without stopping it', async () => {
    const helper = new URL('../helpers/dockerd.ts', import.meta.url).pathname;
    const script = [
      `import { startDockerd } from ${JSON.stringify(helper)};`,
      'const d = await startDockerd({ name: "dockerd-abandoned" });',
      'await d.docker(["version"]);',
      'console.log(JSON.stringify({ pid: d.pid, base: d.socketPath }));',
      'process.exit(0);',
    ].join('\n');
    const out = await runChecked(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
    const { pid, base } = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { pid: number; base: string };
    const dir = path.dirname(base);
    assert.equal(existsSync(dir), false, dir);
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), false);
    let state = '';
    for (let i = 0; i < 40; i++) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      } catch {
        state = 'gone';
      }
      if (state === 'gone' || state === 'Z') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(state === 'gone' || state === 'Z', `dockerd ${pid} is ${state}`);
  });
});
