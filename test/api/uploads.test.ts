import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { binary, envelopeCode, pushBlob } from '../helpers/push.js';
import { rawRequest } from '../helpers/raw-http.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('blob uploads', () => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await createTestRegistry();
  });
  afterEach(async () => registry.close());

  async function startUpload(repository = 'team/app'): Promise<string> {
    const response = await registry.request.post(`/v2/${repository}/blobs/uploads/`).expect(202);
    return response.headers.location as string;
  }

  async function uploadSize(location: string): Promise<number> {
    const response = await registry.request.get(location).expect(204);
    const [, end] = String(response.headers.range).split('-');
    return response.headers.range === '0-0' ? -1 : Number(end) + 1;
  }

  async function fetchBlob(repository: string, digest: string): Promise<Buffer> {
    const response = await registry.request.get(`/v2/${repository}/blobs/${digest}`).buffer(true).parse(binary).expect(200);
    return response.body as Buffer;
  }

  /** Nothing of this blob is visible and no session or stray bytes remain. */
  async function assertNothingStored(digest?: string): Promise<void> {
    const files = await registry.storedFiles();
    assert.deepEqual(files.filter((file) => file.startsWith('blobs/') || file.startsWith('uploads/')), [], `stored: ${files.join(', ')}`);
    const counts = await registry.rowCounts();
    assert.equal(counts.blobs, 0);
    assert.equal(counts.repository_blobs, 0);
    assert.equal(counts.uploads, 0);
    if (digest) await registry.request.head(`/v2/team/app/blobs/${digest}`).expect(404);
  }

  it('POST starts a session: 202 with Location, Docker-Upload-UUID and Range 0-0', async () => {
    const response = await registry.request.post('/v2/team/app/blobs/uploads/').expect(202);
    const id = response.headers['docker-upload-uuid'] as string;
    assert.match(id, uuid);
    assert.equal(response.headers.location, `/v2/team/app/blobs/uploads/${id}`);
    assert.equal(response.headers.range, '0-0');
    assert.equal(response.headers['content-length'], '0');
    await registry.request.post('/v2/team/app/blobs/uploads').expect(202);
  });

  it('one streamed PATCH with Content-Length, then PUT ?digest= (skopeo)', async () => {
    const blob = testBlob(300_000);
    const location = await startUpload();
    const patched = await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(202);
    assert.equal(patched.headers.range, `0-${blob.bytes.length - 1}`);
    assert.equal(patched.headers.location, location);
    assert.equal(patched.headers['docker-upload-uuid'], location.split('/').pop());
    const done = await registry.request.put(`${location}?digest=${blob.digest}`).expect(201);
    assert.equal(done.headers.location, `/v2/team/app/blobs/${blob.digest}`);
    assert.equal(done.headers['docker-content-digest'], blob.digest);
    assert.ok((await fetchBlob('team/app', blob.digest)).equals(blob.bytes));
    assert.deepEqual((await registry.storedFiles()).filter((file) => file.startsWith('uploads/')), []);
    await registry.request.get(location).expect(404);
  });

  it('one streamed PATCH with chunked transfer encoding and no length (docker, podman)', async () => {
    const { port } = await registry.listen();
    const blob = testBlob(1_000_000);
    const location = await startUpload();
    const pieces = Array.from({ length: 10 }, (_, index) => blob.bytes.subarray(index * 100_000, (index + 1) * 100_000));
    const patched = await rawRequest(port, 'PATCH', location, { body: Readable.from(pieces) });
    assert.equal(patched.status, 202);
    assert.equal(patched.headers.range, `0-${blob.bytes.length - 1}`);
    const done = await rawRequest(port, 'PUT', `${location}?digest=${blob.digest}`);
    assert.equal(done.status, 201);
    assert.ok((await fetchBlob('team/app', blob.digest)).equals(blob.bytes));
  });

  it('chunked PATCHes with Content-Range, status in between, PUT with a last chunk', async () => {
    const blob = testBlob(250_000);
    const location = await startUpload();
    const first = await registry.request
      .patch(location)
      .set('Content-Range', '0-99999')
      .set('Content-Type', 'application/octet-stream')
      .send(blob.bytes.subarray(0, 100_000))
      .expect(202);
    assert.equal(first.headers.range, '0-99999');
    const status = await registry.request.get(location).expect(204);
    assert.equal(status.headers.range, '0-99999');
    assert.equal(status.headers.location, location);
    assert.match(String(status.headers['docker-upload-uuid']), uuid);
    await registry.request
      .patch(location)
      .set('Content-Range', '100000-199999')
      .set('Content-Type', 'application/octet-stream')
      .send(blob.bytes.subarray(100_000, 200_000))
      .expect(202);
    const done = await registry.request
      .put(`${location}?digest=${blob.digest}`)
      .set('Content-Range', '200000-249999')
      .set('Content-Type', 'application/octet-stream')
      .send(blob.bytes.subarray(200_000))
      .expect(201);
    assert.equal(done.headers['docker-content-digest'], blob.digest);
    assert.ok((await fetchBlob('team/app', blob.digest)).equals(blob.bytes));
  });

  it('an out-of-order or overlapping chunk is 416 with the current Range, and changes nothing', async () => {
    const blob = testBlob(20_000);
    const location = await startUpload();
    await registry.request.patch(location).set('Content-Range', '0-9999').set('Content-Type', 'application/octet-stream').send(blob.bytes.subarray(0, 10_000)).expect(202);
    for (const range of ['10001-19999', '5000-14999', '0-9999', '20000-29999']) {
      const start = Number(range.split('-')[0]);
      const refused = await registry.request
        .patch(location)
        .set('Content-Range', range)
        .set('Content-Type', 'application/octet-stream')
        .send(blob.bytes.subarray(0, Number(range.split('-')[1]) - start + 1))
        .expect(416);
      assert.equal(envelopeCode(refused), 'RANGE_INVALID');
      assert.equal(refused.headers.range, '0-9999', range);
    }
    assert.equal(await uploadSize(location), 10_000);
    await registry.request.patch(location).set('Content-Range', '10000-19999').set('Content-Type', 'application/octet-stream').send(blob.bytes.subarray(10_000)).expect(202);
    await registry.request.put(`${location}?digest=${blob.digest}`).expect(201);
    assert.ok((await fetchBlob('team/app', blob.digest)).equals(blob.bytes));
  });

  it('a malformed Content-Range is 400, a length that disagrees with it is 400 SIZE_INVALID; nothing is kept', async () => {
    const location = await startUpload();
    const bytes = Buffer.alloc(100, 7);
    for (const range of ['bytes', 'zero-ninety-nine', '0-', '-99', '0-99-199']) {
      const refused = await registry.request.patch(location).set('Content-Range', range).set('Content-Type', 'application/octet-stream').send(bytes).expect(400);
      assert.equal(envelopeCode(refused), 'BLOB_UPLOAD_INVALID', range);
    }
    const wrongLength = await registry.request.patch(location).set('Content-Range', '0-49').set('Content-Type', 'application/octet-stream').send(bytes).expect(400);
    assert.equal(envelopeCode(wrongLength), 'SIZE_INVALID');
    const { port } = await registry.listen();
    const shortChunked = await rawRequest(port, 'PATCH', location, { headers: { 'Content-Range': '0-199' }, body: Readable.from([bytes]) });
    assert.equal(shortChunked.status, 400);
    assert.equal((shortChunked.json() as { errors: Array<{ code: string }> }).errors[0]?.code, 'SIZE_INVALID');
    const longChunked = await rawRequest(port, 'PATCH', location, { headers: { 'Content-Range': '0-49' }, body: Readable.from([bytes]) });
    assert.equal(longChunked.status, 400);
    assert.equal(await uploadSize(location), -1);
    assert.deepEqual((await registry.storedFiles()).filter((file) => file.startsWith('blobs/')), []);
    const upload = (await registry.storedFiles()).filter((file) => file.startsWith('uploads/'));
    for (const file of upload) assert.equal((await registry.storage.stat(file))?.size, 0, 'the session holds no bytes');
  });

  it('a monolithic POST ?digest= with the body is 201', async () => {
    const blob = testBlob(5000);
    const response = await registry.request
      .post(`/v2/team/app/blobs/uploads/?digest=${blob.digest}`)
      .set('Content-Type', 'application/octet-stream')
      .send(blob.bytes)
      .expect(201);
    assert.equal(response.headers.location, `/v2/team/app/blobs/${blob.digest}`);
    assert.equal(response.headers['docker-content-digest'], blob.digest);
    assert.ok((await fetchBlob('team/app', blob.digest)).equals(blob.bytes));
    assert.equal((await registry.rowCounts()).uploads, 0);
  });

  it('an empty blob can be uploaded both ways', async () => {
    const empty = testBlob(0);
    await registry.request.post(`/v2/team/app/blobs/uploads/?digest=${empty.digest}`).expect(201);
    const location = await startUpload('team/other');
    await registry.request.put(`${location}?digest=${empty.digest}`).expect(201);
    const fetched = await registry.request.get(`/v2/team/other/blobs/${empty.digest}`).expect(200);
    assert.equal(fetched.headers['content-length'], '0');
  });

  it('a monolithic POST with a wrong digest is 400 DIGEST_INVALID and stores nothing', async () => {
    const blob = testBlob(5000);
    const other = testBlob(10);
    const response = await registry.request
      .post(`/v2/team/app/blobs/uploads/?digest=${other.digest}`)
      .set('Content-Type', 'application/octet-stream')
      .send(blob.bytes)
      .expect(400);
    assert.equal(envelopeCode(response), 'DIGEST_INVALID');
    await assertNothingStored(other.digest);
    await registry.request.head(`/v2/team/app/blobs/${blob.digest}`).expect(404);
  });

  it('a final PUT whose digest does not match is 400 DIGEST_INVALID; the session and its bytes are gone', async () => {
    const blob = testBlob(70_000);
    const location = await startUpload();
    await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(202);
    const wrong = testBlob(1).digest;
    const response = await registry.request.put(`${location}?digest=${wrong}`).expect(400);
    assert.equal(envelopeCode(response), 'DIGEST_INVALID');
    assert.equal(envelopeCode(await registry.request.get(location).expect(404)), 'BLOB_UPLOAD_UNKNOWN');
    await assertNothingStored(wrong);
    await registry.request.head(`/v2/team/app/blobs/${blob.digest}`).expect(404);
  });

  it('a malformed or missing digest on PUT is 400 DIGEST_INVALID before anything is touched', async () => {
    const blob = testBlob(1000);
    const location = await startUpload();
    await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(202);
    for (const query of ['?digest=sha256:1234', '?digest=md5:abcd', '', '?digest=', `?digest=${blob.digest}&digest=${blob.digest}`]) {
      const response = await registry.request
        .put(`${location}${query}`)
        .set('Content-Type', 'application/octet-stream')
        .send(Buffer.from('trailing bytes'))
        .expect(400);
      assert.equal(envelopeCode(response), 'DIGEST_INVALID', query);
    }
    assert.equal(await uploadSize(location), 1000, 'the session keeps exactly what was sent before');
    assert.deepEqual((await registry.storedFiles()).filter((file) => file.startsWith('blobs/')), []);
    await registry.request.put(`${location}?digest=${blob.digest}`).expect(201);
  });

  it('finishes with a sha512 digest', async () => {
    const blob = testBlob(40_000);
    const location = await startUpload();
    await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes.subarray(0, 30_000)).expect(202);
    const done = await registry.request
      .put(`${location}?digest=${blob.sha512}`)
      .set('Content-Type', 'application/octet-stream')
      .send(blob.bytes.subarray(30_000))
      .expect(201);
    assert.equal(done.headers['docker-content-digest'], blob.sha512);
    assert.ok((await fetchBlob('team/app', blob.sha512)).equals(blob.bytes));
    const whole = await registry.request.post(`/v2/team/b/blobs/uploads/?digest=${blob.sha512}`).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(201);
    assert.equal(whole.headers['docker-content-digest'], blob.sha512);
  });

  it('DELETE cancels a session: 204, later use is 404 BLOB_UPLOAD_UNKNOWN, no bytes remain', async () => {
    const blob = testBlob(10_000);
    const location = await startUpload();
    await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(202);
    await registry.request.delete(location).expect(204);
    for (const attempt of [
      registry.request.get(location),
      registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes),
      registry.request.put(`${location}?digest=${blob.digest}`),
      registry.request.delete(location),
    ]) {
      const response = await attempt.expect(404);
      assert.equal(envelopeCode(response), 'BLOB_UPLOAD_UNKNOWN');
    }
    await assertNothingStored(blob.digest);
  });

  it('unknown, malformed and foreign upload ids are 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const location = await startUpload('team/app');
    const id = location.split('/').pop() ?? '';
    for (const path of [
      '/v2/team/app/blobs/uploads/00000000-0000-4000-8000-000000000000',
      '/v2/team/app/blobs/uploads/not-an-id',
      `/v2/team/other/blobs/uploads/${id}`,
    ]) {
      assert.equal(envelopeCode(await registry.request.get(path).expect(404)), 'BLOB_UPLOAD_UNKNOWN', path);
      assert.equal(envelopeCode(await registry.request.patch(path).send(Buffer.from('x')).expect(404)), 'BLOB_UPLOAD_UNKNOWN', path);
    }
    assert.deepEqual((await registry.storedFiles()).filter((file) => file.startsWith('uploads/')), []);
  });

  it('mounts from a repository that has the blob (201), and falls back to a new session (202)', async () => {
    const blob = testBlob(2000);
    await pushBlob(registry.request, 'source/repo', blob);
    const mounted = await registry.request.post(`/v2/target/repo/blobs/uploads/?mount=${blob.digest}&from=source/repo`).expect(201);
    assert.equal(mounted.headers.location, `/v2/target/repo/blobs/${blob.digest}`);
    assert.equal(mounted.headers['docker-content-digest'], blob.digest);
    assert.ok((await fetchBlob('target/repo', blob.digest)).equals(blob.bytes));

    const missing = testBlob(10);
    for (const query of [
      `?mount=${missing.digest}&from=source/repo`,
      `?mount=${blob.digest}&from=no/such/repo`,
      `?mount=${blob.digest}&from=Invalid..Name`,
      `?mount=${missing.digest}`,
    ]) {
      const fallback = await registry.request.post(`/v2/third/repo/blobs/uploads/${query}`).expect(202);
      assert.match(String(fallback.headers.location), /^\/v2\/third\/repo\/blobs\/uploads\/[0-9a-f-]{36}$/, query);
      assert.equal(fallback.headers.range, '0-0');
    }
    await registry.request.head(`/v2/third/repo/blobs/${blob.digest}`).expect(404);
    // Without `from`, a blob present anywhere in the registry is mounted.
    await registry.request.post(`/v2/fourth/repo/blobs/uploads/?mount=${blob.digest}`).expect(201);
    await registry.request.head(`/v2/fourth/repo/blobs/${blob.digest}`).expect(200);
    const malformed = await registry.request.post('/v2/fifth/repo/blobs/uploads/?mount=sha256:nope&from=source/repo').expect(400);
    assert.equal(envelopeCode(malformed), 'DIGEST_INVALID');
  });

  it('20 clients uploading the same blob at once all succeed and one copy is stored', async () => {
    const blob = testBlob(512 * 1024);
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, index) => {
        const repository = `team/app${index % 4}`;
        const location = await startUpload(repository);
        await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(202);
        const done = await registry.request.put(`${location}?digest=${blob.digest}`);
        return { status: done.status, repository };
      }),
    );
    assert.deepEqual(results.map((result) => result.status), Array(20).fill(201));
    const files = await registry.storedFiles();
    assert.deepEqual(files.filter((file) => file.startsWith('blobs/') || file.startsWith('uploads/')), [
      `blobs/sha256/${blob.digest.slice(7, 9)}/${blob.digest.slice(7)}/data`,
    ]);
    const counts = await registry.rowCounts();
    assert.equal(counts.blobs, 1);
    assert.equal(counts.repository_blobs, 4);
    assert.equal(counts.uploads, 0);
    for (let index = 0; index < 4; index++) assert.ok((await fetchBlob(`team/app${index}`, blob.digest)).equals(blob.bytes));
  });

  it('a client that disconnects mid-PATCH leaves the session as it was; the upload can go on', async () => {
    const { port } = await registry.listen();
    const blob = testBlob(2_000_000);
    const location = await startUpload();
    await registry.request.patch(location).set('Content-Range', '0-499999').set('Content-Type', 'application/octet-stream').send(blob.bytes.subarray(0, 500_000)).expect(202);

    const { request } = await import('node:http');
    await new Promise<void>((resolve) => {
      const outgoing = request({ host: '127.0.0.1', port, method: 'PATCH', path: location, headers: { 'Content-Length': '1500000' } });
      outgoing.on('error', () => resolve());
      // Gone once part of the chunk was sent, whether or not the server has read it all yet (a slow
      // store pauses its reading, and then the write's callback would wait for ever).
      const leave = () => {
        outgoing.destroy();
        resolve();
      };
      const giveUp = setTimeout(leave, 2000);
      outgoing.write(blob.bytes.subarray(500_000, 1_200_000), () => {
        clearTimeout(giveUp);
        setTimeout(leave, 100);
      });
    });
    // The server notices the abort asynchronously: wait (up to 10 s) for the bytes to be cut back.
    const data = (await registry.storedFiles()).find((file) => file.startsWith('uploads/'));
    assert.ok(data);
    let size: number | undefined;
    for (let waited = 0; waited < 10_000; waited += 50) {
      size = (await registry.storage.stat(data))?.size;
      if (size === 500_000) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(size, 500_000, 'the bytes of the aborted chunk were cut back');
    assert.equal(await uploadSize(location), 500_000, 'the aborted chunk added nothing');
    assert.deepEqual((await registry.storedFiles()).filter((file) => file.startsWith('blobs/')), []);

    await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes.subarray(500_000)).expect(202);
    await registry.request.put(`${location}?digest=${blob.digest}`).expect(201);
    assert.ok((await fetchBlob('team/app', blob.digest)).equals(blob.bytes));
  });

  it('a session survives a restart; the digest is rebuilt from the stored bytes', async () => {
    const blob = testBlob(300_000);
    const location = await startUpload();
    await registry.request.patch(location).set('Content-Range', '0-199999').set('Content-Type', 'application/octet-stream').send(blob.bytes.subarray(0, 200_000)).expect(202);
    await registry.restart();
    assert.equal(await uploadSize(location), 200_000);
    await registry.request.patch(location).set('Content-Range', '200000-299999').set('Content-Type', 'application/octet-stream').send(blob.bytes.subarray(200_000)).expect(202);
    await registry.restart();
    await registry.request.put(`${location}?digest=${blob.digest}`).expect(201);
    assert.ok((await fetchBlob('team/app', blob.digest)).equals(blob.bytes));
  });
});

describe('uploads keep their registry isolated', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await createTestRegistry();
  });
  after(async () => registry.close());

  it('the same blob pushed to two repositories is stored once and linked twice', async () => {
    const blob = testBlob(4096);
    await pushBlob(registry.request, 'one', blob);
    await pushBlob(registry.request, 'two', blob);
    const blobFiles = (await registry.storedFiles()).filter((file) => file.startsWith('blobs/'));
    assert.equal(blobFiles.length, 1);
    assert.equal((await registry.rowCounts()).repository_blobs, 2);
  });
});
