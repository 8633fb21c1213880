/**
 * A long-running role holds only its own code: the mirror does not load what prewarm, import,
 * export, gc or the relay run (their modules weighed ~6 MB of the mirror's resident memory,
 * before any request, under a bound of 200 MB whatever the clients do).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, ferryArgs } from '../helpers/ferry-entry.ts';
import { freePort, startProcess } from '../helpers/processes.ts';

/** Modules only other commands need, by path under the repository. */
const NOT_THE_MIRRORS = [/^lib\/archive\//, /^lib\/prewarm\//, /^lib\/kolla\/(?!kolla-error)/, /^server\/relay\.ts$/, /^server\/relay\//];

describe('the code a role loads', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-modules-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  it('the mirror loads none of the other commands\' modules', async () => {
    const loaded = join(dir, 'loaded.txt');
    // A loader hook (its own thread) that writes down every module of the repository loaded.
    await writeFile(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.startsWith(${JSON.stringify(pathToFileURL(REPO_ROOT).href + '/')})) appendFileSync(${JSON.stringify(loaded)}, url + '\\n');
  return next(url, context);
}\n`);
    await writeFile(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`);
    const port = await freePort();
    await writeFile(join(dir, 'mirror.json'), JSON.stringify({ listen: `127.0.0.1:${port}`, dataDir: join(dir, 'data') }));
    const mirror = await startProcess({
      name: 'ferry-mirror-modules',
      command: process.execPath,
      args: ['--import', join(dir, 'register.mjs'), ...ferryArgs(), 'mirror', '--config', join(dir, 'mirror.json')],
      cwd: REPO_ROOT,
      ready: { url: `http://127.0.0.1:${port}/v2/`, statuses: [200] },
      readyTimeoutMs: 30_000,
    });
    await mirror.stop(3000);
    const root = pathToFileURL(REPO_ROOT).href + '/';
    const paths = (await readFile(loaded, 'utf8')).split('\n').filter(Boolean).map((u) => u.slice(root.length).replace(/\?.*$/, ''));
    assert.ok(paths.includes('server/mirror.ts'), `the hook saw the mirror's modules: ${paths.length} loaded`);
    assert.deepEqual(paths.filter((p) => !p.startsWith('node_modules/') && NOT_THE_MIRRORS.some((re) => re.test(p))), []);
  });
});
