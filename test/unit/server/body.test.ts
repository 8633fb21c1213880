import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { Request } from 'express';
import { readBody } from '../../../server/body.ts';

const MiB = 1024 * 1024;

/** A request body as readBody sees it: a stream with headers and a socket. */
function body(): PassThrough & Request {
  return Object.assign(new PassThrough(), { headers: {}, socket: { destroy() {} } }) as unknown as PassThrough & Request;
}

describe('readBody', () => {
  it('holds at most 32 MiB of bodies at once: past it a body is refused with TOOMANYREQUESTS and Retry-After', async () => {
    const held = Array.from({ length: 8 }, body);
    const reading = held.map((b) => readBody(b, 4 * MiB));
    for (const b of held) b.write(Buffer.alloc(4 * MiB));
    await new Promise((resolve) => setImmediate(resolve));
    const late = body();
    const refused = readBody(late, 4 * MiB);
    late.write(Buffer.alloc(1024));
    await assert.rejects(refused, (e: { code?: string; headers?: Record<string, string> }) => e.code === 'TOOMANYREQUESTS' && e.headers?.['Retry-After'] === '1');
    // Finished bodies give their share back.
    for (const b of held) b.end();
    assert.deepEqual((await Promise.all(reading)).map((b) => b.length), held.map(() => 4 * MiB));
    const next = body();
    const accepted = readBody(next, 4 * MiB);
    next.end(Buffer.alloc(4 * MiB));
    assert.equal((await accepted).length, 4 * MiB);
  });

  it('refuses a body past its own limit with SIZE_INVALID and gives its share back', async () => {
    const big = body();
    const refused = readBody(big, MiB);
    big.write(Buffer.alloc(MiB + 1));
    await assert.rejects(refused, { code: 'SIZE_INVALID' });
    const fits = Array.from({ length: 8 }, body);
    const reading = fits.map((b) => readBody(b, 4 * MiB));
    for (const b of fits) b.end(Buffer.alloc(4 * MiB));
    assert.equal((await Promise.all(reading)).length, 8);
  });
});
