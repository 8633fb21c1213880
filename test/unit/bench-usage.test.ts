import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { headerComment } from '../../bench/lib/usage.ts';

const run = promisify(execFile);

describe('bench scripts: --help prints the script header', () => {
  it('takes the first block comment without its markers', () => {
    assert.equal(headerComment('#!/x\n/**\n * What it measures.\n *\n *   npx tsx bench/x.ts [--n 3]\n */\nimport a from "b";\n/** not this */'),
      'What it measures.\n\n  npx tsx bench/x.ts [--n 3]');
    assert.equal(headerComment('const x = 1;'), '');
  });

  it('is wired into every bench script, each with a header that says how to run it', async () => {
    const scripts = (await readdir('bench')).filter((f) => f.endsWith('.ts'));
    assert.ok(scripts.length >= 5);
    for (const f of scripts) {
      const source = await readFile(`bench/${f}`, 'utf8');
      assert.match(source, /^exitWithUsageIfAsked\(import\.meta\.url\);$/m, `bench/${f} answers --help`);
      assert.match(headerComment(source), new RegExp(`npx tsx bench/${f.replace('.', '\\.')}`), `bench/${f}'s header says how to run it`);
    }
  });

  it('answers --help before doing any work (bench/link.ts rejected it as an unknown option)', async function () {
    this.timeout(60_000);
    const { stdout } = await run('npx', ['tsx', 'bench/link.ts', '--help']);
    assert.match(stdout, /npx tsx bench\/link\.ts \[--profile/);
  });
});
