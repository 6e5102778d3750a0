import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testBlob, type TestBlob } from '../helpers/blobs.js';
import { binary, envelopeCode, pushBlob } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

describe('blobs: HEAD, GET, ranges, DELETE', () => {
  let registry: TestRegistry;
  let blob: TestBlob;
  before(async () => {
    registry = await createTestRegistry();
    blob = testBlob(100_000);
    await pushBlob(registry.request, 'team/app', blob);
  });
  after(async () => registry.close());

  it('HEAD gives digest, exact length and Accept-Ranges, no body', async () => {
    const response = await registry.request.head(`/v2/team/app/blobs/${blob.digest}`).expect(200);
    assert.equal(response.headers['docker-content-digest'], blob.digest);
    assert.equal(response.headers['content-length'], String(blob.bytes.length));
    assert.equal(response.headers['accept-ranges'], 'bytes');
    assert.equal(response.headers['content-type'], 'application/octet-stream');
    assert.equal(response.headers['x-content-type-options'], 'nosniff');
    assert.equal(response.text, undefined);
  });

  it('GET streams the exact bytes', async () => {
    const response = await registry.request.get(`/v2/team/app/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
    assert.ok(Buffer.isBuffer(response.body) && response.body.equals(blob.bytes));
    assert.equal(response.headers['content-length'], String(blob.bytes.length));
    assert.equal(response.headers['docker-content-digest'], blob.digest);
    assert.equal(response.headers['x-content-type-options'], 'nosniff', 'a browser never reads pushed bytes as a page or a script');
  });

  const size = 100_000;
  const ranges: Array<[string, number, number]> = [
    ['bytes=0-9', 0, 9],
    ['bytes=99990-', 99_990, size - 1],
    ['bytes=-16', size - 16, size - 1],
    ['bytes=50000-50000', 50_000, 50_000],
    ['bytes=99000-200000', 99_000, size - 1],
  ];
  for (const [header, start, end] of ranges) {
    it(`Range ${header} → 206 with Content-Range`, async () => {
      const response = await registry.request
        .get(`/v2/team/app/blobs/${blob.digest}`)
        .set('Range', header)
        .buffer(true)
        .parse(binary)
        .expect(206);
      assert.equal(response.headers['content-range'], `bytes ${start}-${end}/${size}`);
      assert.equal(response.headers['content-length'], String(end - start + 1));
      assert.ok((response.body as Buffer).equals(blob.bytes.subarray(start, end + 1)));
    });
  }

  it('an unsatisfiable Range is 416 with the size', async () => {
    const response = await registry.request.get(`/v2/team/app/blobs/${blob.digest}`).set('Range', 'bytes=100000-').expect(416);
    assert.equal(response.headers['content-range'], `bytes */${size}`);
    assert.equal(envelopeCode(response), 'RANGE_INVALID');
  });

  for (const header of ['bytes=abc', 'bytes=0-1,5-6', 'pages=1-2', 'bytes=10-5']) {
    it(`a Range it does not serve (${header}) gets the whole blob`, async () => {
      const response = await registry.request
        .get(`/v2/team/app/blobs/${blob.digest}`)
        .set('Range', header)
        .buffer(true)
        .parse(binary)
        .expect(200);
      assert.ok((response.body as Buffer).equals(blob.bytes));
    });
  }

  it('a repository serves only blobs linked to it', async () => {
    const response = await registry.request.get(`/v2/other/app/blobs/${blob.digest}`).expect(404);
    assert.equal(envelopeCode(response), 'BLOB_UNKNOWN');
    await registry.request.head(`/v2/other/app/blobs/${blob.digest}`).expect(404);
    const unknown = testBlob(10);
    assert.equal(envelopeCode(await registry.request.get(`/v2/team/app/blobs/${unknown.digest}`).expect(404)), 'BLOB_UNKNOWN');
  });

  for (const digest of ['sha256:abc', `md5:${'a'.repeat(32)}`, 'notadigest', `sha256:${'A'.repeat(64)}`]) {
    it(`a malformed digest (${digest.slice(0, 20)}) is 400 DIGEST_INVALID`, async () => {
      const response = await registry.request.get(`/v2/team/app/blobs/${digest}`).expect(400);
      assert.equal(envelopeCode(response), 'DIGEST_INVALID');
    });
  }

  it('DELETE unlinks the blob from one repository and keeps it for others', async () => {
    await pushBlob(registry.request, 'second/app', blob);
    const response = await registry.request.delete(`/v2/second/app/blobs/${blob.digest}`).expect(202);
    assert.equal(response.headers['content-length'], '0');
    assert.equal(envelopeCode(await registry.request.get(`/v2/second/app/blobs/${blob.digest}`).expect(404)), 'BLOB_UNKNOWN');
    await registry.request.get(`/v2/team/app/blobs/${blob.digest}`).expect(200);
    assert.equal(envelopeCode(await registry.request.delete(`/v2/second/app/blobs/${blob.digest}`).expect(404)), 'BLOB_UNKNOWN');
  });
});

describe('blobs with deletes disabled', () => {
  it('DELETE is 405 UNSUPPORTED and the blob stays', async () => {
    const registry = await createTestRegistry({ deleteEnabled: false });
    try {
      const blob = testBlob(1000);
      await pushBlob(registry.request, 'repo', blob);
      const response = await registry.request.delete(`/v2/repo/blobs/${blob.digest}`).expect(405);
      assert.equal(envelopeCode(response), 'UNSUPPORTED');
      await registry.request.get(`/v2/repo/blobs/${blob.digest}`).expect(200);
    } finally {
      await registry.close();
    }
  });
});
