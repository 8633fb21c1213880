import assert from 'node:assert/strict';
import { createFixture, expectError, type Fixture } from './fixture.ts';

describe('api: GET /v2/ (base)', () => {
  let fx: Fixture;
  before(async () => { fx = await createFixture(); });
  after(async () => { await fx.close(); });

  it('answers 200 with registry/2.0 in Docker-Distribution-API-Version', async () => {
    const res = await fx.api.get('/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(res.body, {});
  });

  it('answers /v2 without the trailing slash the same way', async () => {
    const res = await fx.api.get('/v2');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('answers HEAD /v2/ with 200 and no body', async () => {
    const res = await fx.api.head('/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.equal(res.text, undefined);
  });

  it('sends the API version header on errors too', async () => {
    const res = await fx.api.get('/v2/no/such/endpoint');
    expectError(res, 404, 'NAME_UNKNOWN');
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('answers UNSUPPORTED (405) with an Allow header for a method the base does not take', async () => {
    const res = await fx.api.post('/v2/');
    expectError(res, 405, 'UNSUPPORTED');
    assert.equal(res.headers.allow, 'GET, HEAD');
  });

  it('gives every response an X-Request-Id', async () => {
    const res = await fx.api.get('/v2/');
    assert.match(res.headers['x-request-id'] ?? '', /^[\w.-]+$/);
  });
});
