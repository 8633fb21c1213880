import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BufferPool } from '../../../lib/storage/buffer-pool.ts';
import { openForSend, sendFileRange } from '../../../lib/storage/send-file.ts';

const KiB = 1024;
const BIG = 64 << 20;

/** Counts what is out of the pool, to see the sender's memory and how far it read. */
class CountingPool extends BufferPool {
  acquired = 0;
  out = 0;
  maxOut = 0;
  override acquire(): Buffer {
    this.acquired++;
    this.out++;
    this.maxOut = Math.max(this.maxOut, this.out);
    return super.acquire();
  }
  override release(buf: Buffer): void {
    this.out--;
    super.release(buf);
  }
}

function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

describe('sendFileRange', () => {
  let dir: string;
  let server: Server;
  let port: number;
  let pool: CountingPool;
  /** What the current request should send: file path and inclusive range. */
  let job: { path: string; start: number; end: number };
  /** Settles with the sender's outcome for the last request. */
  let outcome: Promise<'done' | Error>;

  const file = pattern(200 * KiB + 123);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-send-file-'));
    await writeFile(join(dir, 'f'), file);
    // Sparse, and far larger than what loopback socket buffers can swallow.
    await writeFile(join(dir, 'big'), '');
    await truncate(join(dir, 'big'), BIG);
    server = createServer((_req: IncomingMessage, res: ServerResponse) => {
      outcome = (async () => {
        const fd = await openForSend(job.path);
        res.setHeader('Content-Length', job.end - job.start + 1);
        try {
          await sendFileRange(res, fd, job.start, job.end, pool);
          return 'done' as const;
        } catch (e) {
          res.destroy();
          return e as Error;
        }
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  beforeEach(() => {
    pool = new CountingPool({ slabSize: 16 * KiB, maxSlabsPerRead: 4, budget: 1024 * KiB });
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  function fetchAll(): Promise<{ body: Buffer; complete: boolean }> {
    return new Promise((resolve) => {
      get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ body: Buffer.concat(parts), complete: res.complete }));
        res.on('error', () => resolve({ body: Buffer.concat(parts), complete: false }));
      }).on('error', () => resolve({ body: Buffer.alloc(0), complete: false }));
    });
  }

  for (const [start, end] of [[0, file.length - 1], [1000, 150_000], [16 * KiB, 32 * KiB - 1], [777, 777]] as const) {
    it(`sends exactly bytes ${start}-${end} of a file many chunks long`, async () => {
      job = { path: join(dir, 'f'), start, end };
      const { body, complete } = await fetchAll();
      assert.equal(await outcome, 'done');
      assert.ok(complete);
      assert.ok(body.equals(file.subarray(start, end + 1)), `got ${body.length} bytes`);
    });
  }

  it('holds at most two reads of slabs at a time and gives them all back to the pool', async () => {
    job = { path: join(dir, 'f'), start: 0, end: file.length - 1 };
    await fetchAll();
    assert.equal(await outcome, 'done');
    assert.ok(pool.acquired > 10, `took ${pool.acquired} slabs`);
    assert.ok(pool.maxOut <= 2 * 4, `held ${pool.maxOut} slabs at once`);
    assert.equal(pool.out, 0);
    assert.equal(pool.idleBytes, pool.maxOut * 16 * KiB);
  });

  it('takes one slab per read when many readers share the budget', async () => {
    pool = new CountingPool({ slabSize: 16 * KiB, maxSlabsPerRead: 4, budget: 32 * KiB });
    job = { path: join(dir, 'f'), start: 0, end: file.length - 1 };
    const { body } = await fetchAll();
    assert.equal(await outcome, 'done');
    assert.ok(body.equals(file));
    assert.equal(pool.maxOut, 2);
  });

  it('stops reading and settles when the client goes away mid-body', async () => {
    job = { path: join(dir, 'big'), start: 0, end: BIG - 1 };
    await new Promise<void>((resolve) => {
      const req = get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.once('data', () => { req.destroy(); resolve(); });
      });
      req.on('error', () => {});
    });
    assert.equal(await outcome, 'done');
    assert.ok(pool.acquired < BIG / (16 * KiB) / 2, `took ${pool.acquired} slabs of ${BIG / (16 * KiB)}`);
  });

  it('rejects, and the response is cut, when the file is shorter than the range', async () => {
    job = { path: join(dir, 'f'), start: 0, end: file.length + 50_000 };
    const { body, complete } = await fetchAll();
    const result = await outcome;
    assert.ok(result instanceof Error);
    assert.match(result.message, /file ended at byte/);
    assert.equal(complete, false);
    assert.ok(body.length <= file.length);
    assert.equal(pool.out, 0);
  });
});
