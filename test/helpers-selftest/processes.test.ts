import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { freePort, portAnswers, run, runChecked, startProcess } from '../helpers/processes.ts';

const node = process.execPath;

/** Running (a zombie left for an init that does not reap counts as dead). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('helpers: processes', function () {
  this.timeout(20_000);

  it('hands out a port nobody listens on', async () => {
    const port = await freePort();
    assert.ok(port > 0 && port < 65536);
    assert.equal(await portAnswers(port), false);
  });

  it('waits for an HTTP server to answer, logs its output, and stops it with SIGTERM', async () => {
    const port = await freePort();
    const script = `console.error('booting'); require('http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1', () => console.log('listening'));`;
    const p = await startProcess({ name: 'selftest-http', command: node, args: ['-e', script], ready: { url: `http://127.0.0.1:${port}/` } });
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'ok');
    const info = await p.stop();
    assert.equal(info.signal, 'SIGTERM');
    assert.equal(alive(p.pid), false);
    await new Promise((r) => setTimeout(r, 50));
    const log = await readFile(p.logPath, 'utf8');
    assert.match(log, /booting/);
    assert.match(log, /listening/);
  });

  it('kills a process that ignores SIGTERM once the grace time is over', async () => {
    const port = await freePort();
    const script = `process.on('SIGTERM', () => {}); require('net').createServer().listen(${port}, '127.0.0.1');`;
    const p = await startProcess({ name: 'selftest-stubborn', command: node, args: ['-e', script], ready: { port } });
    const t0 = Date.now();
    const info = await p.stop(300);
    assert.equal(info.signal, 'SIGKILL');
    assert.ok(Date.now() - t0 >= 250);
  });

  it('fails fast with the output when the process exits before it is ready', async () => {
    const t0 = Date.now();
    await assert.rejects(
      startProcess({ name: 'selftest-dies', command: node, args: ['-e', 'console.error("bad config"); process.exit(3)'], ready: { port: 1 }, readyTimeoutMs: 10_000 }),
      /exited before it was ready \(code 3[\s\S]*bad config/,
    );
    assert.ok(Date.now() - t0 < 5000);
  });

  it('fails with a clear message for a command that does not exist', async () => {
    await assert.rejects(startProcess({ name: 'selftest-missing', command: '/nonexistent/ferry-binary' }), /cannot start/);
  });

  it('runs a command to completion, and runChecked throws with its stderr on failure', async () => {
    const res = await run(node, ['-e', 'process.stdin.pipe(process.stdout)'], { input: 'echo me' });
    assert.equal(res.stdout, 'echo me');
    assert.equal(res.code, 0);
    await assert.rejects(runChecked(node, ['-e', 'console.error("boom"); process.exit(2)']), /exit 2\nboom/);
  });
});

describe('helpers: processes exit hook', function () {
  this.timeout(20_000);

  it('kills what a test run started when the runner exits without stopping it', async () => {
    const helper = new URL('../helpers/processes.ts', import.meta.url).pathname;
    const script = [
      `import { startProcess } from ${JSON.stringify(helper)};`,
      `const p = await startProcess({ name: 'selftest-orphan', command: ${JSON.stringify(node)}, args: ['-e', 'setInterval(() => {}, 1000)'] });`,
      'console.log(p.pid);',
      'process.exit(0);',
    ].join('\n');
    const out = await runChecked(node, ['--import', 'tsx', '--input-type=module', '-e', script]);
    const pid = Number(out.trim().split('\n').pop());
    assert.ok(pid > 0, out);
    for (let i = 0; i < 40 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(pid), false);
  });
});
