/**
 * The carry-by-hand path with the real CLI and dockerd: docker save -> `ferry import` renamed by
 * the shipped rewrite rules -> docker pull HOST/kollaglue/...; then `ferry export` of that store
 * -> `ferry import` into a fresh store -> a fresh mirror -> docker pull.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { runFerry } from './ferry-cli.ts';
import { startTestMirror, type TestMirror } from './mirror-fixture.ts';


/** A config with the shipped rewrite rules and no upstream, storing in dataDir. */
async function writeConfig(dir: string, dataDir: string): Promise<string> {
  const shipped = JSON.parse(await readFile('registry.config.json', 'utf8')) as { rewrite: Array<{ match: string; local?: string }> };
  const rewrite = shipped.rewrite.filter((r) => r.local !== undefined).map((r) => ({ match: r.match, local: r.local }));
  const file = join(dir, `ferry-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify({ listen: '127.0.0.1:0', dataDir, rewrite }));
  return file;
}

describe('ferry import and export with dockerd (the carry-by-hand path)', function () {
  this.timeout(180_000);
  let dir: string;
  let dockerd: Dockerd;
  let image: BuiltImage;
  let source: TestMirror;
  const mirrors: TestMirror[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-carry-'));
    image = await buildImage({ layers: [2 << 20], seed: 'carry-by-hand', runnable: { message: 'carried by hand' }, format: 'docker' });
    source = await startTestMirror();
    await pushImage(image, source.host, 'kolla/centos-binary-keystone', '2.0.2');
    dockerd = await startDockerd({ name: 'dockerd-carry' });
  });

  after(async () => {
    await dockerd?.stop();
    for (const m of mirrors) await m.stop();
    await source?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('imports a docker save tarball as lokolla/* by the rules and serves it as kollaglue/* to docker pull', async () => {
    // What operators do today on the far side: pull, docker save.
    const far = `${source.host}/kolla/centos-binary-keystone:2.0.2`;
    await dockerd.docker(['pull', far]);
    await dockerd.docker(['tag', far, 'kolla/centos-binary-keystone:2.0.2']);
    const tarball = join(dir, 'keystone.tar');
    await dockerd.docker(['save', '-o', tarball, 'kolla/centos-binary-keystone:2.0.2']);
    await dockerd.docker(['rmi', far, 'kolla/centos-binary-keystone:2.0.2']);

    const dataDir = join(dir, 'home');
    const config = await writeConfig(dir, dataDir);
    const imported = await runFerry(['import', '--quiet', '--config', config, tarball]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout + imported.stderr, /lokolla\/centos-binary-keystone:2\.0\.2/);

    const home = await startTestMirror({ rewrite: JSON.parse(await readFile(config, 'utf8')).rewrite }, {}, dataDir);
    mirrors.push(home);
    const ref = `${home.host}/kollaglue/centos-binary-keystone:2.0.2`;
    await dockerd.docker(['pull', ref]);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), 'carried by hand\n');
    await dockerd.docker(['rmi', ref]);
  });

  it('exports that store, imports the bundle into a fresh store, and a fresh mirror serves it', async () => {
    const bundle = join(dir, 'bundle');
    const exported = await runFerry(['export', '--quiet', '--config', await writeConfig(dir, join(dir, 'home')), '-o', bundle]);
    assert.equal(exported.code, 0, exported.stderr);

    const freshData = join(dir, 'fresh');
    const imported = await runFerry(['import', '--quiet', '--config', await writeConfig(dir, freshData), bundle]);
    assert.equal(imported.code, 0, imported.stderr);

    const fresh = await startTestMirror({}, {}, freshData);
    mirrors.push(fresh);
    const ref = `${fresh.host}/lokolla/centos-binary-keystone:2.0.2`;
    await dockerd.docker(['pull', ref]);
    assert.equal(await dockerd.docker(['run', '--rm', '--network', 'none', ref]), 'carried by hand\n');
  });

  it('refuses a truncated tarball with a message naming it, and stores nothing', async () => {
    const whole = await readFile(join(dir, 'keystone.tar'));
    const cut = join(dir, 'cut.tar');
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    const dataDir = join(dir, 'cut-store');
    const res = await runFerry(['import', '--quiet', '--config', await writeConfig(dir, dataDir), cut]);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, new RegExp(cut.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    const mirror = await startTestMirror({}, {}, dataDir);
    mirrors.push(mirror);
    assert.deepEqual(await mirror.mirror.store.repositories.listRepositories(), []);
  });
});
