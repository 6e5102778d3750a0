import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { binary, envelopeCode, pushBlob } from '../helpers/push.js';
import { S3Driver } from '../../src/storage/s3.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const MiB = 1024 * 1024;

describe('S3 storage: blob GET redirects to a presigned URL when turned on', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await createTestRegistry({ storage: 's3', s3: { redirectLifetime: 60_000 } });
  });
  after(async () => registry.close());

  it('GET answers 307 to a URL serving the exact bytes, ranges included; HEAD stays local', async () => {
    const blob = testBlob(300_000);
    await pushBlob(registry.request, 'team/app', blob);
    const response = await registry.request.get(`/v2/team/app/blobs/${blob.digest}`).redirects(0).expect(307);
    assert.equal(response.headers['docker-content-digest'], blob.digest);
    const location = response.headers.location as string;
    assert.match(location, new RegExp(`^${registry.s3!.endpoint}/registry-test/registry/blobs/sha256/`));
    assert.match(location, /X-Amz-Expires=60(&|$)/);
    const fetched = await fetch(location);
    assert.equal(fetched.status, 200);
    assert.ok(Buffer.from(await fetched.arrayBuffer()).equals(blob.bytes));
    const ranged = await fetch(location, { headers: { Range: 'bytes=1000-1999' } });
    assert.equal(ranged.status, 206);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(blob.bytes.subarray(1000, 2000)));

    const head = await registry.request.head(`/v2/team/app/blobs/${blob.digest}`).redirects(0).expect(200);
    assert.equal(head.headers['content-length'], String(blob.bytes.length));
    assert.equal(head.headers.location, undefined);
  });

  it('a blob this repository does not hold is 404, not a redirect', async () => {
    const blob = testBlob(1000);
    await pushBlob(registry.request, 'team/other', blob);
    const response = await registry.request.get(`/v2/team/app/blobs/${blob.digest}`).redirects(0).expect(404);
    assert.equal(envelopeCode(response), 'BLOB_UNKNOWN');
  });
});

describe('S3 storage: finishing an upload', () => {
  let registry: TestRegistry;
  /** S3 commands the registry's driver sends, in order: name and key. */
  let commands: Array<{ name: string; key: string }>;
  before(async () => {
    registry = await createTestRegistry({ storage: 's3' });
  });
  after(async () => registry.close());

  const recordCommands = () => {
    const driver = registry.storage;
    assert.ok(driver instanceof S3Driver);
    commands = [];
    driver.client.middlewareStack.add(
      (next, context) => async (args) => {
        commands.push({ name: String(context.commandName), key: String((args.input as { Key?: string }).Key ?? '') });
        return next(args);
      },
      { step: 'initialize', name: 'recordCommands' },
    );
  };

  it('assembles the blob in S3 without reading it back when the digest state is in memory', async () => {
    recordCommands();
    const blob = testBlob(13 * MiB);
    await pushBlob(registry.request, 'team/app', blob);
    const names = commands.map((command) => command.name);
    assert.ok(names.includes('CompleteMultipartUploadCommand'));
    assert.ok(names.includes('CopyObjectCommand'), 'moved into place by a copy inside S3');
    assert.ok(!names.includes('GetObjectCommand'), `no byte was downloaded: ${names.join(', ')}`);
  });

  it('after a restart (digest state lost) the sealed object is read once to verify the digest', async () => {
    const blob = testBlob(9 * MiB);
    const started = await registry.request.post('/v2/team/app/blobs/uploads/').expect(202);
    const location = started.headers.location as string;
    await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes.subarray(0, 6 * MiB)).expect(202);
    await registry.restart();
    recordCommands();
    await registry.request
      .put(`${location}?digest=${blob.digest}`)
      .set('Content-Type', 'application/octet-stream')
      .set('Content-Range', `${6 * MiB}-${blob.bytes.length - 1}`)
      .send(blob.bytes.subarray(6 * MiB))
      .expect(201);
    const reads = commands.filter((command) => command.name === 'GetObjectCommand').map((command) => command.key);
    assert.equal(reads.filter((key) => key.endsWith('/data')).length, 1, `the sealed bytes were read once: ${reads.join(', ')}`);
    const back = await registry.request.get(`/v2/team/app/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
    assert.ok(Buffer.isBuffer(back.body) && back.body.equals(blob.bytes));
  });
});

describe('S3 storage: when S3 stays unreachable', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await createTestRegistry({ storage: 's3', s3: { maxAttempts: 2 } });
  });
  after(async () => registry.close());

  it('requests fail with 503 UNAVAILABLE and Retry-After, nothing half-written shows, and the push resumes once S3 is back', async () => {
    const stored = testBlob(400_000);
    await pushBlob(registry.request, 'team/app', stored);
    const blob = testBlob(12 * MiB);
    const started = await registry.request.post('/v2/team/app/blobs/uploads/').expect(202);
    const location = started.headers.location as string;
    const first = blob.bytes.subarray(0, 6 * MiB);
    await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(first).expect(202);
    const before = await registry.storedFiles();

    await registry.s3!.stop();
    try {
      const patch = await registry.request
        .patch(location)
        .set('Content-Type', 'application/octet-stream')
        .set('Content-Range', `${first.length}-${blob.bytes.length - 1}`)
        .send(blob.bytes.subarray(first.length))
        .expect(503);
      assert.equal(envelopeCode(patch), 'UNAVAILABLE');
      assert.equal(patch.headers['retry-after'], '5');
      const status = await registry.request.get(location).expect(204);
      assert.equal(status.headers.range, `0-${first.length - 1}`, 'the failed chunk added nothing to the session');
      const get = await registry.request.get(`/v2/team/app/blobs/${stored.digest}`).expect(503);
      assert.equal(envelopeCode(get), 'UNAVAILABLE');
      const put = await registry.request.put(`${location}?digest=${blob.digest}`).expect(503);
      assert.equal(envelopeCode(put), 'UNAVAILABLE');
      await registry.request.head(`/v2/team/app/blobs/${blob.digest}`).expect(404);
      assert.equal((await registry.rowCounts()).blobs, 1, 'only the blob stored before the outage is known');
    } finally {
      await registry.s3!.start();
    }

    assert.deepEqual(await registry.storedFiles(), before, 'the outage left nothing new in the bucket');
    await registry.request
      .patch(location)
      .set('Content-Type', 'application/octet-stream')
      .set('Content-Range', `${first.length}-${blob.bytes.length - 1}`)
      .send(blob.bytes.subarray(first.length))
      .expect(202);
    await registry.request.put(`${location}?digest=${blob.digest}`).expect(201);
    const back = await registry.request.get(`/v2/team/app/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
    assert.ok(Buffer.isBuffer(back.body) && back.body.equals(blob.bytes));
    assert.deepEqual((await registry.storedFiles()).filter((file) => file.startsWith('uploads/')), []);
  });
});
