/**
 * `ferry prewarm`'s Kolla options as an operator meets them: every example in `prewarm --help`
 * works as printed (with --dry-run; run in this process, the command being the CLI's own), and a
 * mistyped Kolla release or profile gives one line with "did you mean", exit 2, no stack trace
 * (run as a child process, as an operator does).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prewarmCommand } from '../../scripts/prewarm.ts';
import { runFerry } from '../e2e/ferry-cli.ts';

const ferry = (...args: string[]): ReturnType<typeof runFerry> => runFerry(args);

/** What `ferry prewarm ARGS` prints on stdout, run in this process. */
async function prewarmDryRun(args: string[]): Promise<string> {
  const printed: string[] = [];
  const log = console.log;
  console.log = (...parts: unknown[]) => { printed.push(parts.join(' ')); };
  try {
    await prewarmCommand().exitOverride().parseAsync(args, { from: 'user' });
  } finally {
    console.log = log;
  }
  return printed.join('\n');
}

/** The `ferry prewarm --kolla...` lines of the help's Examples, as argument lists after `ferry`. */
function kollaExamples(help: string): string[][] {
  return help.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('ferry prewarm ') && l.includes('--kolla'))
    .map((l) => l.replace(/\s+#.*$/, '').split(/\s+/).slice(1));
}

describe('ferry prewarm: Kolla options on the command line', function () {
  this.timeout(120_000);
  let examples: string[][];
  let dir: string;
  let globals: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-kolla-cli-'));
    globals = join(dir, 'globals.yml');
    await writeFile(globals, '---\nkolla_base_distro: "rocky"\nopenstack_release: "2025.1"\nnetwork_interface: "eth0"\n');
    const help = await ferry('prewarm', '--help');
    assert.equal(help.code, 0, help.stderr);
    examples = kollaExamples(help.stdout);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('offers Kolla examples for old and new series: wallaby, zed, 2024.2, master', () => {
    const releases = examples.map((args) => args[args.indexOf('--kolla-release') + 1]);
    for (const series of ['wallaby', 'zed', '2024.2', 'master']) assert.ok(releases.includes(series), `${series} in ${JSON.stringify(releases)}`);
  });

  it('runs every Kolla example of the help as printed (dry run), each naming its series\' images', async () => {
    for (const args of examples.filter((a) => !a.includes('--kolla-globals'))) {
      const stdout = await prewarmDryRun([...args.slice(1), ...(args.includes('--dry-run') ? [] : ['--dry-run'])]);
      const refs = stdout.trim().split('\n');
      assert.ok(refs.length >= 30, `${args.join(' ')} listed ${refs.length} images`);
      const release = args[args.indexOf('--kolla-release') + 1]!;
      const tag = release === '2.0.2' ? '2.0.2' : release;
      for (const ref of refs) assert.ok(ref.includes(`:${tag}`), `${ref} has the ${tag} tag`);
    }
  });

  it('runs the --kolla-globals examples of the help (dry run): 32 images for 2025.1, 9 on compute, each with its groups', async () => {
    const withGlobals = examples.filter((a) => a.includes('--kolla-globals'));
    assert.equal(withGlobals.length, 2);
    for (const args of withGlobals) {
      const mine = args.slice(1).filter((a, i, all) => a !== '--kolla-inventory' && all[i - 1] !== '--kolla-inventory').map((a) => (a === '/etc/kolla/globals.yml' ? globals : a));
      const stdout = await prewarmDryRun([...mine, ...(mine.includes('--dry-run') ? [] : ['--dry-run'])]);
      const lines = stdout.trim().split('\n');
      const compute = args.includes('--kolla-group');
      assert.match(lines[0]!, new RegExp(`^# kolla-ansible 2025\\.1 deploy \\(globals .*, inventory kolla-ansible 2025\\.1 multinode, ${compute ? 'group compute' : 'all groups'}\\): ${compute ? 9 : 32} images$`));
      assert.equal(lines.length - 1, compute ? 9 : 32);
      assert.match(stdout, /^quay\.io\/openstack\.kolla\/nova-compute:2025\.1-rocky-9 +# compute$/m);
    }
  });

  it('answers a mistyped inventory group with one line saying what was meant, exit 2, no stack trace', async () => {
    const r = await ferry('prewarm', '--kolla-globals', globals, '--kolla-group', 'compte', '--dry-run');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^ferry: the inventory kolla-ansible 2025\.1 multinode has no group "compte"; did you mean "compute"\?/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  const typos: Array<[string, string[], RegExp]> = [
    ['release', ['--kolla-profile', 'default', '--kolla-release', 'walaby', '--kolla-distro', 'centos'], /^ferry: no Kolla image list for release "walaby"; did you mean "wallaby"\?/],
    ['profile', ['--kolla-profile', 'defualt', '--kolla-release', 'zed', '--kolla-distro', 'rocky'], /^ferry: Kolla zed has no build profile "defualt"; did you mean "default"\?/],
    ['deploy release', ['--kolla-globals', '/dev/null', '--kolla-release', '2025.3'], /^ferry: no kolla-ansible deploy facts for release "2025\.3"; did you mean "2025\.1"/],
  ];
  for (const [what, args, message] of typos) {
    it(`answers a mistyped Kolla ${what} with one line saying what was meant, exit 2, no stack trace`, async () => {
      const r = await ferry('prewarm', ...args, '--dry-run');
      assert.equal(r.code, 2);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  }
});
