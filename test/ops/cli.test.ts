/** The ferry CLI as a child process: help of every command, versions, usage errors (exit 2), config check. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, run, type RunResult } from '../helpers/processes.ts';

const FERRY = resolve(import.meta.dirname, '../../bin/ferry.js');
const ferry = (...args: string[]): Promise<RunResult> => run(process.execPath, [FERRY, ...args], { timeoutMs: 30_000 });

describe('ferry CLI', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-cli-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  it('prints usage listing every command for --help, exit 0', async () => {
    const r = await ferry('--help');
    assert.equal(r.code, 0);
    for (const c of ['mirror', 'prewarm', 'config']) assert.match(r.stdout, new RegExp(`^  ${c}\\b`, 'm'));
  });

  for (const cmd of [['mirror'], ['prewarm'], ['config', 'check']]) {
    it(`prints usage and examples for ${cmd.join(' ')} --help, exit 0`, async () => {
      const r = await ferry(...cmd, '--help');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: ferry ${cmd.join(' ')} `));
      assert.match(r.stdout, /^Examples:$/m);
    });
  }

  it('prints the package version for --version', async () => {
    const r = await ferry('--version');
    assert.equal(r.code, 0);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+$/);
  });

  it('names a wrong flag and exits 2, on the program and on subcommands', async () => {
    for (const args of [['--bogus'], ['mirror', '--bogus'], ['prewarm', '--nope'], ['config', 'check', '--what']]) {
      const r = await ferry(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /error: unknown option '--(bogus|nope|what)'/);
    }
  });

  it('exits 2 for an unknown command and for no command at all', async () => {
    const r = await ferry('frobnicate');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
    assert.equal((await ferry()).code, 2);
  });

  it('config check: exit 2 naming the file and the key path of a bad value', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, JSON.stringify({ upstreams: { hub: { url: 'https://h', connections: 0 } }, cache: { colour: 'red' } }));
    const r = await ferry('config', 'check', '--config', file);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`config error: ${file.replace(/[.]/g, '\\.')}: `));
    assert.match(r.stderr, /upstreams\.hub\.connections: /);
    assert.match(r.stderr, /unknown key cache\.colour/);
    assert.equal((await ferry('mirror', '--config', file)).code, 2);
  });

  it('config check: exit 2 naming auth.htpasswd when the file it points at is missing', async () => {
    const file = join(dir, 'auth.json');
    await writeFile(file, JSON.stringify({ auth: { htpasswd: 'missing.htpasswd' } }));
    const r = await ferry('config', 'check', '-c', file);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /auth\.htpasswd: cannot read .*missing\.htpasswd: ENOENT/);
  });

  it('config check: prints the effective config with defaults filled and secrets masked, exit 0', async () => {
    const file = join(dir, 'good.json');
    await writeFile(file, JSON.stringify({ upstreams: { hub: { url: 'https://h', username: 'u', password: 'hunter2', token: 'tok-secret' } }, relay: { tokens: ['0123456789abcdef0123'] } }));
    const r = await ferry('config', 'check', '--config', file);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /hunter2|tok-secret|0123456789abcdef0123/);
    const cfg = JSON.parse(r.stdout) as { upstreams: { hub: { password: string; token: string; connections: number; username: string } }; relay: { tokens: string[] }; listen: string; file: string };
    assert.equal(cfg.upstreams.hub.password, '***');
    assert.equal(cfg.upstreams.hub.token, '***');
    assert.equal(cfg.upstreams.hub.username, 'u');
    assert.deepEqual(cfg.relay.tokens, ['***']);
    assert.equal(cfg.upstreams.hub.connections, 40);
    assert.equal(cfg.listen, '0.0.0.0:4000');
    assert.equal(cfg.file, file);
  });

  it('offline commands find the config by FERRY_CONFIG from any directory, say which config and store, and need no upstream secret', async () => {
    const store = join(dir, 'store');
    const file = join(dir, 'relay-mirror.json');
    await writeFile(file, JSON.stringify({ dataDir: store, upstreams: { relay: { url: 'https://relay.example', kind: 'relay', tokenEnv: 'FERRY_TEST_UNSET_TOKEN' } }, defaultUpstream: 'relay' }));
    const env: NodeJS.ProcessEnv = { ...process.env, FERRY_CONFIG: file };
    delete env.FERRY_TEST_UNSET_TOKEN;
    for (const args of [['gc', '--dry-run'], ['export', '-o', join(dir, 'out')], ['config', 'check']]) {
      const r = await run(process.execPath, [FERRY, ...args], { timeoutMs: 30_000, env, cwd: dir });
      assert.doesNotMatch(r.stderr, /is not set \(|config error/, args.join(' '));
      const which = r.stderr.split('\n').find((l) => l.startsWith(`ferry ${args[0] === 'config' ? 'config check' : args[0]}: config `));
      assert.equal(which, `ferry ${args[0] === 'config' ? 'config check' : args[0]}: config ${file} (FERRY_CONFIG), store ${store}`, r.stderr);
    }
    const check = await run(process.execPath, [FERRY, 'config', 'check'], { timeoutMs: 30_000, env, cwd: dir });
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stderr, /note: upstreams\.relay\.tokenEnv: FERRY_TEST_UNSET_TOKEN is not set here/);
  });

  it('the mirror stops with one line naming the variable when an upstream secret is missing', async () => {
    const file = join(dir, 'relay-mirror-start.json');
    await writeFile(file, JSON.stringify({ listen: '127.0.0.1:0', dataDir: join(dir, 'store2'), upstreams: { relay: { url: 'https://relay.example', kind: 'relay', tokenEnv: 'FERRY_TEST_UNSET_TOKEN' } } }));
    const r = await ferry('mirror', '--config', file);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /config error: .*upstreams\.relay\.tokenEnv: environment variable FERRY_TEST_UNSET_TOKEN is not set/);
  });

  it('prewarm with no mirror at the address: one line saying to start it or pass -m, exit 1', async () => {
    const port = await freePort();
    const r = await ferry('prewarm', '-m', `http://127.0.0.1:${port}`, 'kolla/keystone:2.0.2');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^ferry prewarm: no mirror at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\); start it or pass -m URL$`, 'm'));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    // Without -m: the mirror its config describes (FERRY_CONFIG here), said on the first line.
    const file = join(dir, 'prewarm-mirror.json');
    await writeFile(file, JSON.stringify({ listen: `0.0.0.0:${port}`, dataDir: join(dir, 'unused') }));
    const viaConfig = await run(process.execPath, [FERRY, 'prewarm', 'kolla/keystone:2.0.2'], { timeoutMs: 30_000, env: { ...process.env, FERRY_CONFIG: file } });
    assert.equal(viaConfig.code, 1, viaConfig.stderr);
    assert.match(viaConfig.stderr, new RegExp(`^ferry prewarm: config ${file.replace(/[.]/g, '\\.')} \\(FERRY_CONFIG\\), mirror http://127\\.0\\.0\\.1:${port} \\(its listen\\)$`, 'm'));
    assert.match(viaConfig.stderr, new RegExp(`no mirror at http://127\\.0\\.0\\.1:${port} `));
  });
});
