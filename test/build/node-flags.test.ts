/**
 * node's flags for ferry (bin/ferry.js's first line, helpers/ferry-entry.ts:nodeFlags) as they act
 * on the process, beyond being passed (compiled.test.ts checks that).
 */
import assert from 'node:assert/strict';
import { REPO_ROOT, nodeFlags } from '../helpers/ferry-entry.ts';
import { run } from '../helpers/processes.ts';

/** Pulls 64 MiB through undici from a local server, as a transfer's ranges do; V8 prints each WebAssembly function it compiles. */
const PULL = `
import { createServer } from 'node:http';
import { Agent, request } from 'undici';
const body = Buffer.alloc(256 * 1024, 7);
const server = createServer((req, res) => res.end(body));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const agent = new Agent({ connections: 4 });
const url = 'http://127.0.0.1:' + server.address().port + '/';
for (let i = 0; i < 256; i++) {
  const res = await request(url, { dispatcher: agent });
  for await (const chunk of res.body) void chunk;
}
console.log('pulled');
process.exit(0);
`;

async function compiledWith(flags: string[]): Promise<string> {
  const res = await run(process.execPath, [...flags, '--trace-wasm-compilation-times', '--input-type=module', '-e', PULL], { cwd: REPO_ROOT, timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /pulled/);
  return res.stdout;
}

describe("ferry's node flags", function () {
  this.timeout(120_000);

  it("keep undici's HTTP parser (WebAssembly) in V8's baseline compiler: its TurboFan recompile took ~30 MB for a second or two, the mirror's peak RSS (issue 12)", async () => {
    const turbofan = /Compiled function .* using TurboFan/;
    // The same pull without the flags does recompile it: the check below means something.
    assert.match(await compiledWith(['--max-semi-space-size=8']), turbofan, 'the pull is too short to make the parser hot');
    const out = await compiledWith(nodeFlags());
    assert.doesNotMatch(out, turbofan, out.split('\n').find((l) => turbofan.test(l)));
  });
});
