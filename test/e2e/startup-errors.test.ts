/**
 * Startup failures an operator can cause (issue 16.7), through the real CLI: each exits 1 with
 * one line naming the cause and the fix, and no stack trace unless --debug.
 */
import assert from 'node:assert/strict';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFerry, type CliResult } from './ferry-cli.ts';

const NOBODY = { uid: 65534, gid: 65534 };

function assertOneLine(r: CliResult, re: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}: ${r.stderr}`);
  // (Before it, the CLI says which config and store it uses.)
  const lines = r.stderr.trim().split('\n').filter((l) => !/^ferry \w+: config /.test(l));
  assert.equal(lines.length, 1, `more than one line:\n${r.stderr}`);
  assert.match(lines[0] ?? '', re);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'a stack trace');
}

describe('ferry mirror: startup failures say what to do', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-startup-'));
    await chown(dir, NOBODY.uid, NOBODY.gid);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function config(name: string, extra: Record<string, unknown> = {}): Promise<string> {
    const data = join(dir, `${name}-data`);
    const file = join(dir, `${name}.json`);
    await writeFile(file, JSON.stringify({ listen: '127.0.0.1:0', dataDir: data, log: { level: 'warn' }, ...extra }));
    await chown(file, NOBODY.uid, NOBODY.gid);
    return file;
  }

  it('a port in use: names the address and how to find who holds it', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      const file = await config('port', { listen: `127.0.0.1:${port}` });
      assertOneLine(await runFerry(['mirror', '--config', file]), new RegExp(`127\\.0\\.0\\.1:${port} is already in use.*ss -ltnp.*FERRY_LISTEN`));
      const debug = await runFerry(['mirror', '--config', file, '--debug']);
      assert.equal(debug.code, 1);
      assert.match(debug.stderr, /^\s+at /m, '--debug shows the stack');
    } finally {
      holder.close();
    }
  });

  it('a data dir the service user cannot write (EACCES on ferry.lock): names its owner and the chown', async () => {
    const file = await config('root-owned');
    await mkdir(join(dir, 'root-owned-data'));
    assertOneLine(await runFerry(['mirror', '--config', file], { as: NOBODY }), /cannot write .*root-owned-data\/ferry\.lock \(owned by root; ferry runs as uid 65534\): .*chown -R ferry: /);
  });

  it('a data dir partly written by root: names the first directory it cannot write, before serving', async () => {
    const file = await config('partly');
    const data = join(dir, 'partly-data');
    await mkdir(join(data, 'repositories', 'lib'), { recursive: true });
    await chown(data, NOBODY.uid, NOBODY.gid);
    await chown(join(data, 'repositories'), NOBODY.uid, NOBODY.gid);
    // repositories/lib stays root's, as after a first run with sudo.
    assertOneLine(await runFerry(['mirror', '--config', file], { as: NOBODY }), /cannot write .*partly-data\/repositories\/lib \(owned by root.*chown -R ferry: /);
  });

  it('a missing TLS file: names which one', async () => {
    const file = await config('tls', { tls: { cert: join(dir, 'missing-cert.pem'), key: join(dir, 'missing-key.pem') } });
    assertOneLine(await runFerry(['mirror', '--config', file]), /tls\.cert file .*missing-cert\.pem does not exist/);
  });
});
