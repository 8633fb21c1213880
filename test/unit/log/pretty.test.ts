/** Pretty logs (a terminal): one line per request, as the access log writes it. */
import assert from 'node:assert/strict';
import { prettyFactory } from 'pino-pretty';
import { PRETTY_OPTIONS } from '../../../lib/log/logger.ts';

describe('pretty logs', () => {
  it('print a request as one line, its fields after the message', () => {
    const line = JSON.stringify({
      level: 30, time: Date.now(), requestId: '5c12db8a', method: 'GET', path: '/v2/kolla/nova-api/manifests/2025.1', route: 'manifest',
      repository: 'kolla/nova-api', reference: '2025.1', status: 200, bytes: 2345, durationMs: 12.5, msg: 'request',
    });
    const out = prettyFactory({ ...PRETTY_OPTIONS, colorize: false })(line);
    assert.equal(out.trimEnd().split('\n').length, 1, out);
    assert.match(out, /request .*"status":200/);
  });
});
