/**
 * The README's scale-out recipe, checked without a cluster (the cluster run is
 * test/cluster/scale-out.test.ts): the replicas' config is the shipped config plus the README's
 * storage section and passes the schema; the README's haproxy.cfg is accepted by haproxy (-c)
 * and is, line for line, the config the cluster tests run through (test/helpers/haproxy.ts)
 * except what is the site's own (addresses, check intervals, the tests' admin socket); Kolla's
 * docker_registry is that config's VIP.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../lib/config/load.ts';
import { RECIPE, RECIPE_BUCKET, RECIPE_ENDPOINT, RECIPE_VIP, recipeHaproxy } from '../cluster/scale-out-recipe.ts';
import { REPO_ROOT } from '../helpers/ferry-entry.ts';
import { haproxyConfig } from '../helpers/haproxy.ts';
import { run } from '../helpers/processes.ts';
import { readmeBlock } from '../helpers/readme.ts';

/** Lines a site writes its own way: where it listens, its servers, how often it checks them. */
const SITE_SPECIFIC = /^\s*(bind|server|default-server|stats socket) /;

function essential(cfg: string): string[] {
  return cfg.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '' && !SITE_SPECIFIC.test(l));
}

describe('README: the scale-out recipe', function () {
  this.timeout(20_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-readme-scale-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("the replicas' config: the shipped config plus the README's storage section passes the schema, keys from a file", async () => {
    const shipped = JSON.parse(await readFile(join(REPO_ROOT, 'registry.config.json'), 'utf8')) as Record<string, unknown>;
    const section = JSON.parse(readmeBlock(RECIPE, 'json')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(section), ['storage'], 'the block is only the storage section');
    const cfg = parseConfig({ ...shipped, ...section }, '/etc/ferry/mirror.json', {});
    assert.equal(cfg.storage.kind, 's3');
    assert.ok(cfg.storage.kind === 's3');
    assert.deepEqual(
      { endpoint: cfg.storage.endpoint, bucket: cfg.storage.bucket, credentialsFile: cfg.storage.credentialsFile, forcePathStyle: cfg.storage.forcePathStyle },
      { endpoint: RECIPE_ENDPOINT, bucket: RECIPE_BUCKET, credentialsFile: '/etc/ferry/s3-credentials', forcePathStyle: true },
    );
  });

  it("the haproxy.cfg: haproxy accepts it, and it is the tests' config but for the site's addresses and intervals", async () => {
    const servers = ['127.0.0.1:14001', '127.0.0.1:14002', '127.0.0.1:14003'];
    const text = recipeHaproxy('127.0.0.1:14000', servers);
    const file = join(dir, 'haproxy.cfg');
    await writeFile(file, text);
    const check = await run('haproxy', ['-c', '-f', file]);
    assert.equal(check.code, 0, `haproxy -c: ${check.stdout}${check.stderr}`);
    const generated = haproxyConfig({ backends: servers.map((s) => ({ port: Number(s.split(':')[1]) })) }, 14000, join(dir, 'admin.sock'));
    assert.deepEqual(essential(text), essential(generated));
    assert.match(text, /^\s*default-server inter \S+ fastinter \S+ downinter \S+ fall 2 rise 1$/m, 'a dead replica out after two failed checks');
  });

  it("Kolla's docker_registry is the haproxy VIP", () => {
    const yaml = readmeBlock(RECIPE, 'yaml');
    assert.match(yaml, new RegExp(`^docker_registry: "${RECIPE_VIP}"$`, 'm'));
    assert.match(readmeBlock(RECIPE, 'haproxy'), new RegExp(`^\\s*bind ${RECIPE_VIP}$`, 'm'));
  });
});
