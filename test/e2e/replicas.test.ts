import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { imageManifest, ociManifestType } from '../helpers/images.js';
import { OciLayout } from '../helpers/oci-layout.js';
import { ociPushPullChecks } from '../helpers/oci-checks.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const skip = await postgresSkipReason();
if (skip) console.log(`# ${skip}`);
const bucket = 'replicas';
/** The key prefix config/s3-postgres.yaml sets. */
const s3Prefix = 'registry';

for (const storage of ['filesystem', 's3'] as const) {
  describe(`two replicas sharing ${storage === 's3' ? 'an S3 bucket' : 'a storage directory'} and a PostgreSQL database`, { skip }, () => {
    let directory: string;
    let root: string;
    let s3: S3TestServer | null = null;
    let drop: () => Promise<void>;
    let replicas: ServerProcess[] = [];
    /** The bytes of one stored object, wherever the replicas keep them. */
    const readStored = async (key: string): Promise<string> => {
      if (!s3) return readFile(path.join(root, key), 'utf8');
      const chunks: Buffer[] = [];
      const driver = s3.driver(bucket, { rootDirectory: s3Prefix });
      try {
        for await (const chunk of await driver.read(key)) chunks.push(chunk as Buffer);
      } finally {
        driver.destroy();
      }
      return Buffer.concat(chunks).toString('utf8');
    };

    before(async () => {
      directory = await mkdtemp(path.join(tmpdir(), 'registry-replicas-'));
      root = path.join(directory, 'storage');
      if (storage === 's3') {
        s3 = await startS3Server();
        await s3.createBucket(bucket);
      }
      const database = await createTestDatabase();
      drop = database.drop;
      // With S3: docs/deployment.md's example, config/s3-postgres.yaml, pointed at the test's S3
      // server and database. Each replica has its own local directory: only the bucket and the
      // database are shared.
      const env = {
        REGISTRY_DATABASE_URL: database.url,
        ...(s3 ? { REGISTRY_CONFIG: 'config/s3-postgres.yaml', ...s3.registryEnv(bucket) } : {}),
      };
      // Started together: the migration runs once.
      replicas = await Promise.all([0, 1].map((index) => startServerProcess({ root: s3 ? path.join(directory, `local-${index}`) : root, env: { ...env, REGISTRY_AUDIT_INSTANCE: `replica-${index}` } })));
    });
    after(async () => {
      for (const replica of replicas) await replica.stop();
      await drop?.();
      await s3?.dispose();
      await rm(directory, { recursive: true, force: true });
    });

    it('a chunked upload alternates between replicas (chunks of 1 MiB, 7 MiB, 1 byte, 3 MiB…) and finishes on the other one', async () => {
      const [a, b] = replicas as [ServerProcess, ServerProcess];
      const blob = testBlob(14 * MiB + 3);
      const sizes = [MiB, 7 * MiB, 1, 3 * MiB];
      const started = await rawRequest(a.port, 'POST', '/v2/shared/app/blobs/uploads/');
      const location = String(started.headers.location);
      let offset = 0;
      for (const [index, size] of sizes.entries()) {
        const replica = index % 2 === 0 ? a : b;
        const body = blob.bytes.subarray(offset, offset + size);
        const patched = await rawRequest(replica.port, 'PATCH', location, {
          headers: { 'Content-Range': `${offset}-${offset + size - 1}`, 'Content-Length': String(body.length) },
          body,
        });
        assert.equal(patched.status, 202, `chunk ${index} on replica ${index % 2}: ${patched.body.toString()}`);
        offset += size;
      }
      const rest = blob.bytes.subarray(offset);
      const done = await rawRequest(a.port, 'PUT', `${location}?digest=${blob.digest}`, {
        headers: { 'Content-Range': `${offset}-${blob.bytes.length - 1}`, 'Content-Length': String(rest.length) },
        body: rest,
      });
      assert.equal(done.status, 201, done.body.toString());
      const pulled = await rawRequest(b.port, 'GET', `/v2/shared/app/blobs/${blob.digest}`);
      assert.ok(pulled.body.equals(blob.bytes));
      if (s3) {
        const keys = await s3.keys(bucket);
        assert.ok(keys.some((key) => key.startsWith(`${s3Prefix}/blobs/`)), 'blobs are stored under the configured prefix');
        assert.deepEqual(keys.filter((key) => !key.startsWith(`${s3Prefix}/`)), [], 'nothing outside the prefix');
        assert.deepEqual(keys.filter((key) => key.startsWith(`${s3Prefix}/uploads/`)), [], 'no parts, carried remainders or session objects stay behind');
      }
    });

    it('the OCI push and pull workflows pass through each replica, read back through the other', async () => {
      const [a, b] = replicas as [ServerProcess, ServerProcess];
      await ociPushPullChecks(a.port, b.port, 'checks/a-to-b');
      await ociPushPullChecks(b.port, a.port, 'checks/b-to-a');
    });

    it('skopeo pushes through one replica and pulls through the other', { skip: missingClients('skopeo') }, async () => {
      const [a, b] = replicas as [ServerProcess, ServerProcess];
      const layout = new OciLayout(path.join(directory, 'layout'));
      const image = await layout.addImage({ layers: [{ files: [{ name: 'a.txt', size: 3000 }] }, { files: [{ name: 'big.bin', size: 24 * MiB }] }] });
      await layout.tag(image, 'v1');
      const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 300_000 });
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://127.0.0.1:${a.port}/shared/skopeo:v1`);
      const out = path.join(directory, 'out');
      await skopeo('copy', '--src-tls-verify=false', `docker://127.0.0.1:${b.port}/shared/skopeo:v1`, `oci:${out}:v1`);
      for (const descriptor of [image, image.config, ...image.layers]) {
        const bytes = await readFile(path.join(out, 'blobs', 'sha256', descriptor.digest.slice(7)));
        assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, descriptor.digest);
      }
    });

    it('a tag moved or deleted through one replica is answered by the other soon after, though it answers that tag from memory', async () => {
      const [a, b] = replicas as [ServerProcess, ServerProcess];
      const [one, two] = [imageManifest({ layerSize: 64 }), imageManifest({ layerSize: 64 })];
      const put = async (reference: string, manifest: typeof one) => {
        for (const blob of manifest.blobs) {
          const response = await rawRequest(a.port, 'POST', `/v2/shared/moving/blobs/uploads/?digest=${blob.digest}`, { headers: { 'Content-Length': String(blob.bytes.length) }, body: blob.bytes });
          assert.equal(response.status, 201);
        }
        const response = await rawRequest(a.port, 'PUT', `/v2/shared/moving/manifests/${reference}`, { headers: { 'Content-Type': ociManifestType, 'Content-Length': String(manifest.bytes.length) }, body: manifest.bytes });
        assert.equal(response.status, 201);
      };
      const answerOf = async (replica: ServerProcess) => {
        const response = await rawRequest(replica.port, 'GET', '/v2/shared/moving/manifests/latest', { headers: { Accept: ociManifestType } });
        return response.status === 200 ? response.headers['docker-content-digest'] : response.status;
      };
      const seenBy = async (replica: ServerProcess, expected: unknown) => {
        const started = Date.now();
        while ((await answerOf(replica)) !== expected) {
          assert.ok(Date.now() - started < 2000, `replica answers ${expected} within 2 s`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        return Date.now() - started;
      };
      await put('latest', one);
      for (let round = 0; round < 5; round++) assert.equal(await answerOf(b), one.digest);
      await put('latest', two);
      const movedMs = await seenBy(b, two.digest);
      const deleted = await rawRequest(a.port, 'DELETE', '/v2/shared/moving/manifests/latest');
      assert.equal(deleted.status, 202);
      const deletedMs = await seenBy(b, 404);
      console.log(`# the other replica answered the move after ${movedMs} ms, the delete after ${deletedMs} ms`);
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
      const link = await readStored('repositories/shared/race/_tags/latest');
      assert.equal(link, digest, 'the storage link agrees with the database');

      // The audit log of that race, read through either replica: one linear chain, in the order the
      // tag moved, ending where the tag is.
      const read = async (replica: ServerProcess, query: string) => JSON.parse((await rawRequest(replica.port, 'GET', `/api/v1/audit/events${query}`)).body.toString()) as { events: Array<{ id: number; from: string | null; to: string | null; action: string; instance: string }> };
      const events = (await read(b, '?repository=shared/race&tag=latest&n=100')).events.reverse();
      assert.equal(events[0]?.action, 'created');
      assert.equal(events.filter((event) => event.action === 'created').length, 1);
      for (let index = 1; index < events.length; index++) assert.equal(events[index]!.from, events[index - 1]!.to, `event ${events[index]!.id} moves the tag from where the one before left it`);
      assert.equal(events.at(-1)!.to, digest, 'the last event is where the tag is');
      assert.equal(new Set(events.map((event) => event.instance)).size, 2, 'both replicas wrote events');
      const verify = await rawRequest(a.port, 'GET', '/api/v1/audit/verify');
      assert.equal(verify.status, 200, verify.body.toString());
    });
  });
}
