import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { envelopeCode } from '../helpers/push.js';

describe('base endpoint and HTTP conventions', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await createTestRegistry();
  });
  after(async () => registry.close());

  it('GET /v2/ answers 200 {} with the API version header', async () => {
    const response = await registry.request.get('/v2/').expect(200);
    assert.deepEqual(response.body, {});
    assert.equal(response.headers['docker-distribution-api-version'], 'registry/2.0');
    await registry.request.get('/v2').expect(200);
  });

  it('every response carries the API version header, errors included', async () => {
    for (const path of ['/v2/nothing/here', '/v2/a/blobs/sha256:bad', '/v3/']) {
      const response = await registry.request.get(path);
      assert.equal(response.headers['docker-distribution-api-version'], 'registry/2.0', path);
      assert.ok(Array.isArray((response.body as { errors?: unknown }).errors), path);
    }
  });

  it('an unknown route is 404 NOT_FOUND in the error envelope', async () => {
    const response = await registry.request.get('/v2/repo/unknown-thing').expect(404);
    assert.equal(envelopeCode(response), 'NOT_FOUND');
  });

  it('a method a route does not take is 405 UNSUPPORTED with Allow', async () => {
    const response = await registry.request.put('/v2/').expect(405);
    assert.equal(envelopeCode(response), 'UNSUPPORTED');
    assert.match(String(response.headers.allow), /GET/);
  });

  it('echoes a sane X-Request-Id and makes one up otherwise', async () => {
    const echoed = await registry.request.get('/v2/').set('X-Request-Id', 'abc-123');
    assert.equal(echoed.headers['x-request-id'], 'abc-123');
    const made = await registry.request.get('/v2/').set('X-Request-Id', 'bad id with spaces');
    assert.match(String(made.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  });
});
