/**
 * ARCHITECTURE.md's error tables are the code's: the situation table equals lib/oci/errors.ts
 * SITUATIONS row for row, and each failure row says what server/errors.ts makes of that failure.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SITUATIONS } from '../../../lib/oci/errors.ts';
import * as T from '../../../lib/transfer/errors.ts';
import * as U from '../../../lib/upstream/errors.ts';
import { UpstreamRequestError } from '../../../lib/upstream/range-source.ts';
import { RelayDrainedError } from '../../../lib/upstream/relay-range-source.ts';
import { toRegistryError } from '../../../server/errors.ts';

const doc = readFileSync(new URL('../../../ARCHITECTURE.md', import.meta.url), 'utf8');

/** The body rows of the markdown table after `<!-- table:<name> -->`, as trimmed cells. */
function tableRows(name: string): string[][] {
  const start = doc.indexOf(`<!-- table:${name} -->`);
  assert.ok(start >= 0, `ARCHITECTURE.md has no table ${name}`);
  const lines = doc.slice(start).split('\n').slice(1);
  const rows: string[][] = [];
  for (const line of lines.slice(2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

/** Each failure row of the document, by its first cell: errors that stand for it. */
const FAILURES: Record<string, unknown[]> = {
  'UpstreamNotFoundError (manifest)': [new U.UpstreamNotFoundError('u', 'manifest', 'latest')],
  'UpstreamNotFoundError (blob)': [new U.UpstreamNotFoundError('u', 'blob', 'sha256:00')],
  'UpstreamNotFoundError (repository)': [new U.UpstreamNotFoundError('u', 'repository', 'x/y')],
  UpstreamAuthError: [new U.UpstreamAuthError('u', 'refused', 401), new U.UpstreamAuthError('u', 'refused', 403)],
  UpstreamRateLimitedError: [new U.UpstreamRateLimitedError('u', 5000)],
  'UpstreamUnavailableError (no status)': [new U.UpstreamUnavailableError('u', 'ECONNREFUSED')],
  'UpstreamUnavailableError (5xx)': [new U.UpstreamUnavailableError('u', 'answered 500', 500), new U.UpstreamUnavailableError('u', 'answered 503', 503)],
  UpstreamProtocolError: [new U.UpstreamProtocolError('u', 'bad JSON')],
  DigestMismatchError: [new T.DigestMismatchError('sha256:aa', 'sha256:bb')],
  SizeMismatchError: [new T.SizeMismatchError(1, 2)],
  TransferAbortedError: [new T.TransferAbortedError()],
  TransferDeadlineError: [new T.TransferDeadlineError(60)],
  StallError: [new T.StallError(20)],
  PrematureEndError: [new T.PrematureEndError(1, 2)],
  LocalIoError: [new T.LocalIoError(errno('ENOSPC'), '/data/transfers/sha256/aa.part')],
  'UpstreamStatusError (404)': [new T.UpstreamStatusError(404)],
  'UpstreamStatusError (401, 403)': [new T.UpstreamStatusError(401), new T.UpstreamStatusError(403)],
  'UpstreamStatusError (429)': [new T.UpstreamStatusError(429)],
  'UpstreamStatusError (other)': [new T.UpstreamStatusError(500), new T.UpstreamStatusError(502), new T.UpstreamStatusError(416)],
  'UpstreamStatusError (cause UpstreamUnavailableError, no status)': [new T.UpstreamStatusError(503, undefined, new U.UpstreamUnavailableError('u', 'nothing listens'))],
  ContentRangeError: [new T.ContentRangeError('bytes=0-9', undefined)],
  RangeIgnoredError: [new T.RangeIgnoredError()],
  'RetriesExhaustedError (unmapped cause)': [new T.RetriesExhaustedError(3, errno('ECONNRESET'))],
  'UpstreamRequestError (UpstreamAuthError)': [new UpstreamRequestError(new U.UpstreamAuthError('u', 'refused', 401))],
  RelayDrainedError: [new RelayDrainedError('https://relay-a', 'dark')],
  'any other error': [new Error('a bug'), 'a string'],
};

describe('ARCHITECTURE.md error tables', () => {
  it('lists every situation of lib/oci/errors.ts, in order, with its wire code and status', () => {
    const rows = tableRows('situations').map(([situation, code, status]) => [situation, code, Number(status)]);
    const code = Object.entries(SITUATIONS).map(([situation, e]) => [situation, e.code, e.status]);
    assert.deepEqual(rows, code);
  });

  it('maps each failure to the situation server/errors.ts gives it', () => {
    const rows = tableRows('failures');
    assert.deepEqual(rows.map((r) => r[0]).sort(), Object.keys(FAILURES).sort(), 'the rows and the failures the test knows differ');
    for (const [failure, situation] of rows) {
      for (const err of FAILURES[failure as string] ?? []) {
        assert.equal(toRegistryError(err).situation, situation, `${failure}: ${String(err)}`);
      }
    }
  });
});
