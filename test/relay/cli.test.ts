/** `ferry relay` as a process: starts from a config, answers with a token, survives SIGHUP, stops on SIGTERM. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from 'node:net';
import { generateToken } from '../../lib/relay/tokens.ts';
import { waitFor } from '../helpers/processes.ts';
import { call } from './fixture.ts';

const ROOT = resolve(import.meta.dirname, '../..');

function ferry(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/ferry.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return { child, output: () => out, exited };
}

describe('ferry relay (command line)', function () {
  this.timeout(30_000);
  let dir: string;
  let running: ChildProcess | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-relay-cli-'));
  });
  after(async () => {
    if (running?.exitCode === null && running.pid) process.kill(running.pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('serves with a token file, reloads on SIGHUP and stops on SIGTERM', async () => {
    const token = generateToken();
    const tokenFile = join(dir, 'tokens');
    await writeFile(tokenFile, `${token}\n`);
    const config = join(dir, 'relay.json');
    await writeFile(config, JSON.stringify({ listen: '127.0.0.1:0', dataDir: './data', upstreams: { hub: { url: 'http://127.0.0.1:9' } }, relay: { tokenFile } }));
    const p = ferry(['relay', '--config', config]);
    running = p.child;
    const started = Date.now();
    let address: string | undefined;
    while (!address && Date.now() - started < 20_000) {
      const line = p.output().split('\n').find((l) => l.includes('"relay listening"'));
      address = line ? (JSON.parse(line) as { address?: string }).address : undefined;
      if (!address) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(address, `no address in: ${p.output()}`);
    assert.equal((await call(`http://${address}/v2/`, { token })).status, 200);
    assert.equal((await call(`http://${address}/v2/`)).status, 401);
    assert.match(p.output(), /"tokens":1,"msg":"relay token file read"/);
    const second = generateToken();
    await writeFile(tokenFile, `${token}\n${second}\n`);
    p.child.kill('SIGHUP');
    await waitFor(() => p.output().includes('"relay token file reloaded"'), 5000, 'the reload log line');
    assert.match(p.output(), /"tokens":2,"msg":"relay token file reloaded"/);
    assert.equal((await call(`http://${address}/v2/`, { token: second })).status, 200);
    // A connected client that sends nothing (a mirror's spare connection) must not hold the stop.
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const silent = connect(port, host);
    await new Promise((r) => silent.once('connect', r));
    silent.on('error', () => undefined);
    const stopping = Date.now();
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
    assert.ok(Date.now() - stopping < 3000, `SIGTERM took ${Date.now() - stopping} ms with a silent connection open`);
    silent.destroy();
  });

  it('refuses to start without any token (exit 2)', async () => {
    const config = join(dir, 'open.json');
    await writeFile(config, JSON.stringify({ listen: '127.0.0.1:0', dataDir: './data2', upstreams: { hub: { url: 'http://127.0.0.1:9' } } }));
    const p = ferry(['relay', '--config', config]);
    running = p.child;
    assert.equal(await p.exited, 2);
    assert.match(p.output(), /no token accepted/);
  });
});
