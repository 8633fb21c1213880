/**
 * The compiled tree (`npm run build` -> dist/) is what `npm start` and the deployment recipes run:
 * it must start, find the files shipped beside the code (default config, status page, Kolla's
 * image lists, the version) and serve, without tsx.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { REPO_ROOT, buildFerry, ferryArgs, nodeFlags } from '../helpers/ferry-entry.ts';
import { spawn } from 'node:child_process';
import { freePort, portAnswers, run, waitFor } from '../helpers/processes.ts';
import { startFerryProcess, type FerryProcess } from '../e2e/transfer-fixture.ts';

const pkgVersion = (await import('../../package.json', { with: { type: 'json' } })).default.version;

describe('the compiled build (dist/)', function () {
  this.timeout(120_000);
  let ferry: FerryProcess | undefined;
  let dataDir: string;

  before(async () => {
    await buildFerry();
    dataDir = await mkdtemp(join(tmpdir(), 'ferry-compiled-'));
  });
  after(async () => {
    await ferry?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('prints its version and help without tsx', async () => {
    const v = await run(process.execPath, [...ferryArgs(true), '--version'], { cwd: REPO_ROOT });
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), pkgVersion);
    const h = await run(process.execPath, [...ferryArgs(true), 'mirror', '--help'], { cwd: REPO_ROOT });
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /Usage: ferry mirror/);
  });

  it('reads the shipped Kolla image lists', async () => {
    const r = await run(process.execPath, [...ferryArgs(true), 'prewarm', '--kolla-profile', 'default', '--kolla-release', '2025.1', '--kolla-distro', 'rocky', '--dry-run'], { cwd: REPO_ROOT });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /nova-api:2025\.1-rocky-9/);
  });

  it('reads the shipped kolla-ansible deploy facts (--kolla-globals)', async () => {
    const globals = join(dataDir, 'globals.yml');
    await writeFile(globals, 'openstack_release: "2025.1"\n');
    const r = await run(process.execPath, [...ferryArgs(true), 'prewarm', '--kolla-globals', globals, '--kolla-group', 'compute', '--dry-run'], { cwd: REPO_ROOT });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /: 9 images\n/);
    assert.match(r.stdout, /^quay\.io\/openstack\.kolla\/nova-compute:2025\.1-rocky-9 +# compute$/m);
  });

  it('validates the embedded default config', async () => {
    const r = await run(process.execPath, [...ferryArgs(true), 'config', 'check'], { cwd: REPO_ROOT });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout + r.stderr, /registry\.config\.json/);
  });

  it('serves the registry API and the status page', async () => {
    ferry = await startFerryProcess({}, dataDir, 'ferry-compiled', { compiled: true });
    const v2 = await request(`${ferry.url}/v2/`);
    assert.equal(v2.statusCode, 200);
    await v2.body.dump();
    const page = await request(`${ferry.url}/status`);
    assert.equal(page.statusCode, 200);
    assert.match(await page.body.text(), /<html/i);
    const status = await request(`${ferry.url}/status.json`);
    assert.equal((await status.body.json() as { version: string }).version, pkgVersion);
    const ps = await run('ps', ['-o', 'args=', '-p', String(ferry.pid)]);
    assert.match(ps.stdout, /dist\/scripts\/ferry\.js mirror/);
    assert.doesNotMatch(ps.stdout, /tsx/);
  });

  it('npm start: stopping npm (SIGTERM) stops the mirror too, no orphan left serving', async () => {
    const port = await freePort();
    // --ignore-scripts skips prestart's build (done in before); the start script itself still runs.
    const npm = spawn('npm', ['start', '--ignore-scripts'], {
      cwd: REPO_ROOT,
      env: { ...process.env, FERRY_LISTEN: `127.0.0.1:${port}`, FERRY_DATA_DIR: join(dataDir, 'npm-start') },
      stdio: 'ignore',
      detached: true,
    });
    const exited = new Promise((r) => npm.once('exit', r));
    try {
      await waitFor(() => portAnswers(port), 30_000, 'the mirror started by npm start');
      // Through bin/ferry.js, with node's flags from its first line: the young generation bounded (issue 12, peak RSS).
      const mirror = (await run('ps', ['-o', 'args=', '--ppid', String(npm.pid)])).stdout;
      assert.match(mirror, /bin\/ferry\.js mirror/);
      assert.match(mirror, /--max-semi-space-size=\d+ /);
      for (const flag of nodeFlags()) assert.ok(mirror.includes(flag), `${flag} in ${mirror}`);
      process.kill(npm.pid!, 'SIGTERM');
      await exited;
      await waitFor(async () => !(await portAnswers(port)), 5000, 'the mirror gone after npm stopped');
    } finally {
      // Whatever is left of the group (an orphaned mirror, if the start script forwards nothing).
      try { process.kill(-npm.pid!, 'SIGKILL'); } catch { /* gone */ }
    }
  });

  it('bin/ferry.js runs dist/ only while it is newer than every source', async () => {
    const current = await run(process.execPath, ['bin/ferry.js', '--version'], { cwd: REPO_ROOT });
    assert.equal(current.code, 0, current.stderr);
    assert.equal(current.stderr, '');
    const source = join(REPO_ROOT, 'lib/oci/digest.ts');
    const before = await stat(source);
    const future = new Date(Date.now() + 60_000);
    await utimes(source, before.atime, future);
    try {
      const stale = await run(process.execPath, ['bin/ferry.js', '--version'], { cwd: REPO_ROOT });
      assert.equal(stale.code, 0, stale.stderr);
      assert.equal(stale.stdout.trim(), pkgVersion);
      assert.match(stale.stderr, /dist\/ is older than the sources/);
    } finally {
      await utimes(source, before.atime, before.mtime);
    }
  });
});
