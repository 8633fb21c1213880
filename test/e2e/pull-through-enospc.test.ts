/**
 * A local I/O error under a transfer (issue 13.6): an injected ENOSPC on the part file fails the transfer
 * within a second, and both the client and the log name the errno and the path. The same blob
 * can be asked for again once the disk has room.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../lib/log/logger.ts';
import { call } from '../relay/fixture.ts';
import { startTestMirror, type TestMirror, fsPaths } from './mirror-fixture.ts';

describe('pull-through: a full disk under a transfer', function () {
  this.timeout(30_000);
  const data = randomBytes(200 * 1024);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  let upstream: Server;
  let mirror: TestMirror;
  let log = '';

  before(async () => {
    upstream = createServer((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end('{}');
      if (req.url?.endsWith(`/blobs/${digest}`)) {
        res.writeHead(200, { 'content-length': data.length, 'docker-content-digest': digest });
        return void res.end(req.method === 'HEAD' ? undefined : data);
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const sink = new PassThrough();
    sink.on('data', (d: Buffer) => { log += d.toString(); });
    mirror = await startTestMirror(
      { upstreams: { up: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` } }, defaultUpstream: 'up' },
      { logger: createLogger({ level: 'info', format: 'json' }, sink) },
    );
  });
  after(async () => {
    await mirror?.stop();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('answers 500 naming ENOSPC and the part file within a second, logs the same, and transfers again when asked later', async () => {
    const dir = fsPaths(mirror.mirror.store).transfersDir;
    const part = join(dir, `${digest.slice('sha256:'.length)}.part`);
    await mkdir(dir, { recursive: true });
    // A real ENOSPC: every write to /dev/full fails with it.
    await symlink('/dev/full', part);
    const started = performance.now();
    const a = await call(`${mirror.url}/v2/lib/x/blobs/${digest}`);
    const ms = performance.now() - started;
    assert.equal(a.status, 500);
    const e = (JSON.parse(a.body.toString()) as { errors: Array<{ code: string; message: string }> }).errors[0];
    assert.match(e?.message ?? '', /ENOSPC/);
    assert.ok(e?.message.includes(part), e?.message);
    assert.ok(ms < 1000, `answered after ${Math.round(ms)} ms`);
    assert.ok(log.split('\n').some((l) => l.includes('ENOSPC') && l.includes(part)), 'the log names the errno and the path');
    // The disk has room again: the same request transfers it.
    await rm(part);
    const b = await call(`${mirror.url}/v2/lib/x/blobs/${digest}`);
    assert.equal(b.status, 200);
    assert.ok(b.body.equals(data));
  });
});
