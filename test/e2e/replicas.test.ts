import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { imageManifest, ociManifestType } from '../helpers/images.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const skip = await postgresSkipReason();
if (skip) console.log(`# ${skip}`);

describe('two replicas sharing blob storage and a PostgreSQL database', { skip }, () => {
  let directory: string;
  let root: string;
  let drop: () => Promise<void>;
  let replicas: ServerProcess[] = [];

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-replicas-'));
    root = path.join(directory, 'storage');
    const database = await createTestDatabase();
    drop = database.drop;
    // Started together: the migration runs once.
    replicas = await Promise.all([0, 1].map(() => startServerProcess({ root, env: { REGISTRY_DATABASE_URL: database.url } })));
  });
  after(async () => {
    for (const replica of replicas) await replica.stop();
    await drop?.();
    await rm(directory, { recursive: true, force: true });
  });

  it('a chunked upload alternates between replicas and finishes on the other one', async () => {
    const [a, b] = replicas as [ServerProcess, ServerProcess];
    const blob = testBlob(3 * 1024 * 1024);
    const started = await rawRequest(a.port, 'POST', '/v2/shared/app/blobs/uploads/');
    const location = String(started.headers.location);
    const chunk = 1024 * 1024;
    for (let index = 0; index < 3; index++) {
      const replica = index % 2 === 0 ? a : b;
      const body = blob.bytes.subarray(index * chunk, (index + 1) * chunk);
      const patched = await rawRequest(replica.port, 'PATCH', location, {
        headers: { 'Content-Range': `${index * chunk}-${(index + 1) * chunk - 1}`, 'Content-Length': String(body.length) },
        body,
      });
      assert.equal(patched.status, 202, `chunk ${index} on replica ${index % 2}`);
    }
    const done = await rawRequest(b.port, 'PUT', `${location}?digest=${blob.digest}`);
    assert.equal(done.status, 201, done.body.toString());
    const pulled = await rawRequest(a.port, 'GET', `/v2/shared/app/blobs/${blob.digest}`);
    assert.ok(pulled.body.equals(blob.bytes));
  });

  it('20 pushes of one tag through both replicas at once leave one answer everywhere', async () => {
    const [a, b] = replicas as [ServerProcess, ServerProcess];
    const manifests = Array.from({ length: 20 }, () => imageManifest({ layerSize: 64 }));
    for (const manifest of manifests) {
      for (const blob of manifest.blobs) {
        const response = await rawRequest(a.port, 'POST', `/v2/shared/race/blobs/uploads/?digest=${blob.digest}`, {
          headers: { 'Content-Length': String(blob.bytes.length) },
          body: blob.bytes,
        });
        assert.equal(response.status, 201);
      }
    }
    const statuses = await Promise.all(
      manifests.map(async (manifest, index) => {
        const replica = index % 2 === 0 ? a : b;
        const response = await rawRequest(replica.port, 'PUT', '/v2/shared/race/manifests/latest', {
          headers: { 'Content-Type': ociManifestType, 'Content-Length': String(manifest.bytes.length) },
          body: manifest.bytes,
        });
        return response.status;
      }),
    );
    assert.deepEqual(statuses, Array(20).fill(201));
    const heads = await Promise.all(
      [a, b].map((replica) => rawRequest(replica.port, 'HEAD', '/v2/shared/race/manifests/latest', { headers: { Accept: ociManifestType } })),
    );
    const digest = heads[0]!.headers['docker-content-digest'];
    assert.equal(heads[1]!.headers['docker-content-digest'], digest, 'both replicas give the same answer');
    assert.ok(manifests.some((manifest) => manifest.digest === digest));
    const link = await readFile(path.join(root, 'repositories', 'shared', 'race', '_tags', 'latest'), 'utf8');
    assert.equal(link, digest, 'the storage link agrees with the database');
  });
});
