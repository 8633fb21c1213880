import assert from 'node:assert/strict';
import { RegistryError, type ErrorCode } from '../../lib/oci/errors.ts';
import {
  UpstreamAuthError, UpstreamNotFoundError, UpstreamProtocolError, UpstreamRateLimitedError, UpstreamUnavailableError,
  toRegistryError, type RegistryWhat,
} from '../../lib/upstream/errors.ts';

describe('toRegistryError', () => {
  const table: Array<[string, unknown, RegistryWhat, ErrorCode, number]> = [
    ['a missing manifest', new UpstreamNotFoundError('hub', 'manifest', 'a:1'), 'manifest', 'MANIFEST_UNKNOWN', 404],
    ['a missing blob', new UpstreamNotFoundError('hub', 'blob', 'a@sha256:x'), 'blob', 'BLOB_UNKNOWN', 404],
    ['a missing repository when listing tags', new UpstreamNotFoundError('hub', 'repository', 'a'), 'tags', 'NAME_UNKNOWN', 404],
    ['refused credentials (403, never a 401 that asks for the mirror\'s)', new UpstreamAuthError('hub', 'refused', 401), 'manifest', 'DENIED', 403],
    ['rate limiting', new UpstreamRateLimitedError('hub', 30_000), 'blob', 'TOOMANYREQUESTS', 429],
    ['an unreachable upstream', new UpstreamUnavailableError('hub', 'ECONNREFUSED'), 'manifest', 'UNAVAILABLE', 503],
    ['an upstream answering 5xx', new UpstreamUnavailableError('hub', 'answered 502', 502), 'manifest', 'UPSTREAM_ERROR', 502],
    ['a wrong digest', new UpstreamProtocolError('hub', 'bad digest', 200), 'manifest', 'UPSTREAM_ERROR', 502],
    ['an unexpected failure', new TypeError('bug'), 'manifest', 'UNKNOWN', 500],
  ];
  for (const [what, err, kind, code, status] of table) {
    it(`answers ${code} (${status}) for ${what}`, () => {
      const r = toRegistryError(err, kind);
      assert.equal(r.code, code);
      assert.equal(r.status, status);
    });
  }
  it('names the upstream in the detail', () => {
    assert.deepEqual(toRegistryError(new UpstreamUnavailableError('quay', 'x', 503), 'blob').detail, { upstream: 'quay', status: 503 });
  });
  it('tells the client when to come back after rate limiting', () => {
    assert.deepEqual(toRegistryError(new UpstreamRateLimitedError('hub', 2500), 'blob').headers, { 'retry-after': '3' });
  });
  it('says why access was denied when the scope was insufficient', () => {
    assert.match(toRegistryError(new UpstreamAuthError('hub', 'refused', 401, true), 'manifest').message, /does not exist there or needs credentials/);
  });
  it('passes a RegistryError through unchanged', () => {
    const e = new RegistryError('NAME_INVALID');
    assert.equal(toRegistryError(e, 'manifest'), e);
  });
});
