/**
 * The README's install recipe, as written: the service user comes before anything that names it,
 * and a copied config's "$schema" names a schema that is there (the recipe's lines that place the
 * config and the schema are run, with /etc/ferry and /opt/ferry moved to temp and this checkout).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { REPO_ROOT } from '../../helpers/ferry-entry.ts';
import { runChecked } from '../../helpers/processes.ts';
import { readmeBlock } from '../../helpers/readme.ts';

describe('README install recipe', () => {
  let etc: string;
  before(async () => { etc = await mkdtemp(join(tmpdir(), 'ferry-etc-')); });
  after(() => rm(etc, { recursive: true, force: true }));

  it('creates the ferry user before the units and install -o use it', async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
    const useradd = readme.indexOf('useradd --system');
    assert.ok(useradd > 0, 'the README creates the service user');
    for (const use of ['User=ferry', 'install -m 600 -o ferry']) {
      assert.ok(readme.indexOf(use) > useradd, `${use} comes after useradd`);
    }
    assert.match(readmeBlock('Installing it on a host', 'sh'), /^useradd --system .* ferry\b/m);
  });

  it('leaves a copied config whose $schema names the schema shipped beside it', async () => {
    const placing = readmeBlock('Installing it on a host', 'sh').split('\n')
      .filter((l) => l.includes('/etc/ferry') && !l.startsWith('ferry '))
      .map((l) => l.replace(/#.*$/, '').replaceAll('/etc/ferry', etc).replaceAll('/opt/ferry', REPO_ROOT));
    assert.ok(placing.some((l) => l.includes('registry.schema.json')), 'the recipe places the schema');
    await runChecked('sh', ['-euc', placing.join('\n')], { cwd: REPO_ROOT });
    const copied = JSON.parse(await readFile(join(etc, 'mirror.json'), 'utf8')) as { $schema: string };
    const schema = resolve(dirname(join(etc, 'mirror.json')), copied.$schema);
    assert.deepEqual(JSON.parse(await readFile(schema, 'utf8')), JSON.parse(await readFile(join(REPO_ROOT, 'registry.schema.json'), 'utf8')));
  });
});
