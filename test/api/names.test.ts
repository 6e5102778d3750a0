import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { errorCode, rawRequest } from '../helpers/raw-http.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

/** Repository names that must be refused, as they appear in the raw request path. */
const badNames = [
  'Team/app',
  'team/App',
  '..',
  '.',
  'a/..',
  '../../../../etc',
  'a/../../b',
  'a/./b',
  'a//b',
  'a/',
  '-a',
  'a..b',
  '%2e%2e',
  'a%2Fb',
  'a%2F..%2F..%2Fb',
  '%2e%2e%2f%2e%2e%2fetc',
  'a%00b',
  'a\\b',
  'a%20b',
  'a'.repeat(256),
  `${'abc/'.repeat(64)}x`,
];

describe('malformed repository names and path tricks', () => {
  let registry: TestRegistry;
  let port: number;
  const blob = testBlob(64);
  before(async () => {
    registry = await createTestRegistry();
    ({ port } = await registry.listen());
  });
  after(async () => registry.close());

  async function assertNothingStored(): Promise<void> {
    const files = await registry.storedFiles();
    assert.deepEqual(files.filter((file) => !file.startsWith('.tmp/')), []);
    const counts = await registry.rowCounts();
    assert.deepEqual(counts, { repositories: 0, blobs: 0, repository_blobs: 0, uploads: 0, mirror_manifests: 0, mirror_tags: 0, mirror_blobs: 0 });
  }

  for (const name of badNames) {
    it(`refuses ${JSON.stringify(name.slice(0, 40))} with NAME_INVALID on every blob and upload endpoint`, async () => {
      const requests: Array<[string, string, Buffer | undefined]> = [
        ['GET', `/v2/${name}/blobs/${blob.digest}`, undefined],
        ['HEAD', `/v2/${name}/blobs/${blob.digest}`, undefined],
        ['DELETE', `/v2/${name}/blobs/${blob.digest}`, undefined],
        ['POST', `/v2/${name}/blobs/uploads/`, undefined],
        ['POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, blob.bytes],
        ['POST', `/v2/${name}/blobs/uploads/?mount=${blob.digest}`, undefined],
        ['PATCH', `/v2/${name}/blobs/uploads/00000000-0000-4000-8000-000000000000`, blob.bytes],
        ['PUT', `/v2/${name}/blobs/uploads/00000000-0000-4000-8000-000000000000?digest=${blob.digest}`, blob.bytes],
        ['GET', `/v2/${name}/blobs/uploads/00000000-0000-4000-8000-000000000000`, undefined],
      ];
      for (const [method, path, body] of requests) {
        const response = await rawRequest(port, method, path, body ? { body } : {});
        assert.equal(response.status, 400, `${method} ${path.slice(0, 80)} → ${response.status}`);
        if (method !== 'HEAD') assert.equal(errorCode(response.json()), 'NAME_INVALID', `${method} ${path.slice(0, 80)}`);
      }
      await assertNothingStored();
    });
  }

  it('paths that match no route are 404, never a redirect or a 500', async () => {
    for (const path of ['/v2//blobs/uploads/', '/v2/../v2/', '/v2/a/blobs/', '/v2/a/blobs', '/v2/a/blobs/uploads/x/y', '/v2/%2e%2e/']) {
      const response = await rawRequest(port, 'GET', path);
      assert.ok(response.status >= 400 && response.status < 500, `${path} → ${response.status}`);
      assert.equal(response.headers.location, undefined);
    }
    await assertNothingStored();
  });

  it('digests with path tricks are DIGEST_INVALID, not a file read', async () => {
    for (const digest of ['..%2f..%2fregistry.db', `sha256:${'a'.repeat(64)}%2f..`, 'sha256%3a..', '%2e%2e']) {
      const response = await rawRequest(port, 'GET', `/v2/ok/blobs/${digest}`);
      assert.equal(response.status, 400, digest);
      assert.equal(errorCode(response.json()), 'DIGEST_INVALID', digest);
    }
    await assertNothingStored();
  });
});
