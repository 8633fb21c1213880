/** The engine's view of a range on a relay: answered at its first byte, not at the relay's headers. */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { UpstreamClient } from '../../lib/upstream/client.ts';
import { RelayPool } from '../../lib/upstream/relay-pool.ts';
import { relayRangeSource } from '../../lib/upstream/relay-range-source.ts';

describe('relay range source', () => {
  it('answers a range once its first byte is here: a cold relay answers its headers at once and sends the range only when its own transfer reached it', async () => {
    const body = new PassThrough();
    const client = {
      fetchBlob: async () => ({ status: 206, headers: { 'content-range': 'bytes 100-103/1000' }, body, url: new URL('http://relay.example/') }),
    } as unknown as UpstreamClient;
    const pool = new RelayPool('up', [{ url: 'http://relay.example', client }]);
    try {
      const source = relayRangeSource(pool, 'r', `sha256:${'0'.repeat(64)}`);
      let answered = false;
      const pending = source.fetchRange(100, 103, new AbortController().signal).then((res) => {
        answered = true;
        return res;
      });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(answered, false, 'headers alone do not answer the engine');
      assert.ok(pool.members[0]!.rttMs !== undefined, 'the headers gave the relay its round trip');
      body.end(Buffer.from('abcd'));
      const res = await pending;
      const got: Buffer[] = [];
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) got.push(Buffer.from(chunk));
      assert.equal(Buffer.concat(got).toString(), 'abcd', 'the first byte is not lost');
      assert.equal(pool.members[0]!.bytes, 4);
    } finally {
      pool.close();
    }
  });

  it('says the relay\'s round trip, and a range handed on in its last round trip leaves its relay\'s connection to the next range', async () => {
    const body = new PassThrough();
    const client = {
      fetchBlob: async () => ({ status: 206, headers: { 'content-range': 'bytes 0-7/1000' }, body, url: new URL('http://relay.example/') }),
    } as unknown as UpstreamClient;
    const pool = new RelayPool('up', [{ url: 'http://relay.example', client }], { connectionsPerRelay: { min: 1, max: 1 } });
    try {
      const source = relayRangeSource(pool, 'r', `sha256:${'0'.repeat(64)}`);
      body.write(Buffer.from('abcd'));
      const res = await source.fetchRange(0, 7, new AbortController().signal);
      const relay = pool.members[0]!;
      assert.equal(res.roundTripMs, relay.rttMs, 'the relay\'s least time to headers, not this range\'s time to its first byte');
      assert.equal(relay.hasRoom(), false, 'its one connection carries the range');
      res.ending?.();
      assert.equal(relay.hasRoom(), true, 'handed on: the next range has the connection');
      assert.equal(relay.open.size, 1, 'the range is still open until its last byte');
      body.end(Buffer.from('efgh'));
      for await (const _ of res.body as AsyncIterable<Uint8Array>);
      assert.equal(relay.open.size, 0);
      assert.equal(relay.holding, 0);
    } finally {
      pool.close();
    }
  });
});
