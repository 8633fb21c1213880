import assert from 'node:assert/strict';
import {
  RETRY_POLICIES, backoffMs, decideRetry, isIdempotent, isRetryableError, isRetryableStatus, parseRetryAfter,
  withRetries, type RetryPolicy,
} from '../../lib/retry/policy.ts';

const policy: RetryPolicy = { attempts: 3, baseMs: 100, maxMs: 1000, jitter: 'full', maxRetryAfterMs: 5000 };

describe('retry policy: the one module for the upstream client, the transfer engine and prewarm', () => {
  for (const status of [408, 425, 429, 500, 502, 503, 504]) {
    it(`retries status ${status}`, () => assert.equal(isRetryableStatus(status), true));
  }
  for (const status of [200, 206, 301, 400, 401, 403, 404, 416, 501]) {
    it(`does not retry status ${status}`, () => assert.equal(isRetryableStatus(status), false));
  }
  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']) {
    it(`retries a failure with code ${code}`, () => assert.equal(isRetryableError(Object.assign(new Error('x'), { code })), true));
  }
  it('finds the code of a wrapped cause (undici wraps socket errors)', () => {
    const cause = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    assert.equal(isRetryableError(new Error('fetch failed', { cause })), true);
  });
  it('does not retry an error without a known code', () => {
    // A garbled status line or header (a flipped byte on the link): undici's parser error, code-less for some (CI saw it fail a transfer).
    assert.equal(isRetryableError(Object.assign(new Error('Response does not match the HTTP/1.1 protocol (Invalid header token)'), { name: 'HTTPParserError' })), true);
    assert.equal(isRetryableError(new TypeError('bug')), false);
    assert.equal(isRetryableError(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' })), false);
  });
  it('counts GET and HEAD as idempotent, POST and PATCH not', () => {
    assert.deepEqual(['GET', 'head', 'POST', 'PATCH'].map(isIdempotent), [true, true, false, false]);
  });

  it('draws the backoff with full jitter under a doubling ceiling', () => {
    assert.equal(backoffMs(1, policy, () => 0), 0);
    assert.equal(backoffMs(1, policy, () => 0.999999), 99);
    assert.equal(backoffMs(3, policy, () => 0.5), 200);
    assert.equal(backoffMs(11, policy, () => 0.999999), 999, 'never above maxMs');
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('7', now), 7000);
    assert.equal(parseRetryAfter(['2', '9'], now), 2000);
    assert.equal(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now), 0, 'a date in the past means now');
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });

  it('waits what Retry-After asks instead of the backoff', () => {
    assert.deepEqual(decideRetry(0, policy, 3000), { retry: true, delayMs: 3000 });
  });
  it('gives up at once when Retry-After asks for more than the ceiling', () => {
    assert.deepEqual(decideRetry(0, policy, 60_000), { retry: false });
  });
  it('gives up after the configured number of retries', () => {
    assert.equal(decideRetry(2, policy).retry, true);
    assert.deepEqual(decideRetry(3, policy), { retry: false });
  });
  it('has sane defaults', () => {
    for (const p of Object.values(RETRY_POLICIES)) assert.ok(p.maxMs >= p.baseMs);
  });

  it('runs an attempt until it succeeds, reporting each retry', async () => {
    const seen: number[] = [];
    const result = await withRetries({ ...policy, baseMs: 1, maxMs: 2 }, async (n) => {
      if (n < 2) throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
      return 'ok';
    }, { classify: (e) => ({ retryable: isRetryableError(e) }), onRetry: (e) => seen.push(e.attempt) });
    assert.equal(result, 'ok');
    assert.deepEqual(seen, [0, 1]);
  });
  it('rethrows a failure that is not retryable after one attempt', async () => {
    let attempts = 0;
    await assert.rejects(withRetries(policy, async () => {
      attempts++;
      throw new Error('no');
    }, { classify: () => ({ retryable: false }) }), /no/);
    assert.equal(attempts, 1);
  });
  it('stops waiting when the signal aborts', async () => {
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(withRetries({ ...policy, baseMs: 60_000, maxMs: 60_000 }, async () => {
      throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    }, { signal: ac.signal, classify: () => ({ retryable: true, retryAfterMs: 4000 }) }), { name: 'AbortError' });
    assert.ok(Date.now() - started < 2000);
  });
});
