import assert from 'node:assert/strict';
import { RegistryError, SITUATIONS, type ErrorCode } from '../../lib/oci/errors.ts';
import {
  UpstreamAuthError, UpstreamNotFoundError, UpstreamProtocolError, UpstreamRateLimitedError, UpstreamUnavailableError,
} from '../../lib/upstream/errors.ts';
import {
  DigestMismatchError, TransferDeadlineError, LocalIoError, RetriesExhaustedError, SizeMismatchError, StallError, TransferAbortedError,
  UpstreamStatusError,
} from '../../lib/transfer/errors.ts';
import { UpstreamRequestError, toTransferError } from '../../lib/upstream/range-source.ts';
import { toRegistryError } from '../../server/errors.ts';

describe('server/errors: toRegistryError, the one mapping at the HTTP edge', () => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const table: Array<[string, unknown, ErrorCode, number]> = [
    ['a missing manifest', new UpstreamNotFoundError('hub', 'manifest', 'a:1'), 'MANIFEST_UNKNOWN', 404],
    ['a missing blob', new UpstreamNotFoundError('hub', 'blob', 'a@sha256:x'), 'BLOB_UNKNOWN', 404],
    ['a missing repository when listing tags', new UpstreamNotFoundError('hub', 'repository', 'a'), 'NAME_UNKNOWN', 404],
    ['refused credentials (403, never a 401 that asks for the mirror\'s)', new UpstreamAuthError('hub', 'refused', 401), 'DENIED', 403],
    ['rate limiting', new UpstreamRateLimitedError('hub', 30_000), 'TOOMANYREQUESTS', 429],
    ['an unreachable upstream', new UpstreamUnavailableError('hub', 'ECONNREFUSED'), 'UNAVAILABLE', 503],
    ['an upstream answering 5xx', new UpstreamUnavailableError('hub', 'answered 502', 502), 'UPSTREAM_ERROR', 502],
    ['a wrong digest', new UpstreamProtocolError('hub', 'bad digest', 200), 'UPSTREAM_ERROR', 502],
    ['a fill whose bytes did not verify', new DigestMismatchError('sha256:a', 'sha256:b'), 'UPSTREAM_ERROR', 502],
    ['a fill whose size disagreed', new SizeMismatchError(1, 2), 'UPSTREAM_ERROR', 502],
    ['a fill stopped by shutdown', new TransferAbortedError('shutting down'), 'UNAVAILABLE', 503],
    ['a fill past its deadline', new TransferDeadlineError(60), 'UNAVAILABLE', 503],
    ['a fill that stalled out', new RetriesExhaustedError(3, new StallError(20)), 'UNAVAILABLE', 503],
    ['a fill whose upstream kept answering 502', new RetriesExhaustedError(3, new UpstreamStatusError(502)), 'UPSTREAM_ERROR', 502],
    ['a fill whose upstream could not be reached', new RetriesExhaustedError(3, toTransferError(new UpstreamUnavailableError('hub', 'unreachable: nothing listens at http://up:5000'))), 'UNAVAILABLE', 503],
    ['a fill the upstream refused', new UpstreamRequestError(new UpstreamAuthError('hub', 'refused', 403)), 'DENIED', 403],
    ['a full disk under a fill', new LocalIoError(enospc, '/data/transfers/x.part'), 'UNKNOWN', 500],
    ['an unexpected failure', new TypeError('bug'), 'UNKNOWN', 500],
  ];
  for (const [what, err, code, status] of table) {
    it(`answers ${code} (${status}) for ${what}`, () => {
      const r = toRegistryError(err);
      assert.equal(r.code, code);
      assert.equal(r.status, status);
    });
  }
  it('tells why a fill could not reach its upstream in the upstream client\'s words, not as an answer it never gave', () => {
    const r = toRegistryError(new RetriesExhaustedError(3, toTransferError(new UpstreamUnavailableError('hub', 'unreachable: nothing listens at http://up:5000; is it running? (upstreams.hub.url)'))));
    assert.match(r.message, /nothing listens at http:\/\/up:5000; is it running\?/);
    assert.doesNotMatch(r.message, /answered 503/);
  });
  it('names the upstream in the detail', () => {
    assert.deepEqual(toRegistryError(new UpstreamUnavailableError('quay', 'x', 503)).detail, { upstream: 'quay', status: 503 });
  });
  it('tells the client when to come back after rate limiting', () => {
    assert.deepEqual(toRegistryError(new UpstreamRateLimitedError('hub', 2500)).headers, { 'retry-after': '3' });
  });
  it('says why access was denied when the scope was insufficient', () => {
    assert.match(toRegistryError(new UpstreamAuthError('hub', 'refused', 401, true)).message, /does not exist there or needs credentials/);
  });
  it('passes a RegistryError through unchanged', () => {
    const e = new RegistryError('NAME_INVALID');
    assert.equal(toRegistryError(e), e);
  });
  it('never tells a client the message of an unforeseen error', () => {
    const r = toRegistryError(new TypeError("Cannot read properties of undefined (reading 'x')"));
    assert.equal(r.message, 'internal error');
  });
  it('names the errno and the path of a local I/O failure', () => {
    const r = toRegistryError(new LocalIoError(enospc, '/data/transfers/x.part'));
    assert.match(r.message, /ENOSPC/);
    assert.match(r.message, /\/data\/transfers\/x\.part/);
  });
  it('declares each situation once, with a status that fits its code (413 and 409 only where the table says)', () => {
    assert.deepEqual(SITUATIONS.MANIFEST_TOO_LARGE, { code: 'SIZE_INVALID', status: 413 });
    assert.deepEqual(SITUATIONS.UPLOAD_BUSY, { code: 'BLOB_UPLOAD_INVALID', status: 409 });
    assert.equal(new RegistryError('MANIFEST_TOO_LARGE').status, 413);
    assert.equal(new RegistryError('MANIFEST_TOO_LARGE').code, 'SIZE_INVALID');
  });
});
