import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { manifestOf, ociManifestType } from '../helpers/images.js';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { rawRequest } from '../helpers/raw-http.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const skip = missingClients('skopeo');
const postgresSkip = await postgresSkipReason();
const acceptAll = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** What a client can see of the registry: catalog, tags, tag digests, referrers. */
async function observe(port: number, subject: string): Promise<unknown> {
  const get = async (requestPath: string) => (await rawRequest(port, 'GET', requestPath, { headers: { Accept: acceptAll } })).json();
  const head = async (requestPath: string) => (await rawRequest(port, 'HEAD', requestPath, { headers: { Accept: acceptAll } })).headers['docker-content-digest'];
  return {
    catalog: await get('/v2/_catalog'),
    appTags: await get('/v2/rebuild/app/tags/list'),
    multiTags: await get('/v2/rebuild/multi/tags/list'),
    digests: [await head('/v2/rebuild/app/manifests/v1'), await head('/v2/rebuild/app/manifests/stable'), await head('/v2/rebuild/multi/manifests/v1')],
    referrers: await get(`/v2/rebuild/app/referrers/${subject}`),
  };
}

describe('metadata rebuild from blob storage alone', { skip }, () => {
  let directory: string;
  let root: string;
  let server: ServerProcess | undefined;
  let image: BlobDescriptor;
  let index: BlobDescriptor;
  let before_: unknown;
  const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 300_000 });

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-rebuild-'));
    root = path.join(directory, 'storage');
    server = await startServerProcess({ root });
    const host = `127.0.0.1:${server.port}`;
    const layout = new OciLayout(path.join(directory, 'layout'));
    image = await layout.addImage({ layers: [{ files: [{ name: 'a.txt', size: 3000 }] }, { files: [{ name: 'b.bin', size: 200_000 }] }] });
    await layout.tag(image, 'v1');
    const amd64 = await layout.addImage({ layers: [{ files: [{ name: 'amd64', size: 1000 }] }], architecture: 'amd64' });
    const arm64 = await layout.addImage({ layers: [{ files: [{ name: 'arm64', size: 1000 }] }], architecture: 'arm64' });
    index = await layout.addIndex([amd64, arm64]);
    await layout.tag(index, 'multi');
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://${host}/rebuild/app:v1`);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://${host}/rebuild/app:stable`);
    await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${layout.directory}:multi`, `docker://${host}/rebuild/multi:v1`);

    // A referrer (a signature-like artifact) of the image, pushed by digest.
    const empty = { bytes: Buffer.from('{}'), digest: `sha256:${createHash('sha256').update('{}').digest('hex')}` };
    const payload = testBlob(100);
    for (const blob of [empty, payload]) {
      const response = await rawRequest(server.port, 'POST', `/v2/rebuild/app/blobs/uploads/?digest=${blob.digest}`, {
        headers: { 'Content-Length': String(blob.bytes.length) },
        body: blob.bytes,
      });
      assert.equal(response.status, 201);
    }
    const referrer = manifestOf(
      {
        schemaVersion: 2,
        mediaType: ociManifestType,
        artifactType: 'application/vnd.example.signature',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty.digest, size: 2 },
        layers: [{ mediaType: 'application/octet-stream', digest: payload.digest, size: 100 }],
        subject: { mediaType: ociManifestType, digest: image.digest, size: image.size },
        annotations: { 'org.example.signed-by': 'ci' },
      },
      ociManifestType,
    );
    const put = await rawRequest(server.port, 'PUT', `/v2/rebuild/app/manifests/${referrer.digest}`, {
      headers: { 'Content-Type': ociManifestType, 'Content-Length': String(referrer.bytes.length) },
      body: referrer.bytes,
    });
    assert.equal(put.status, 201);
    before_ = await observe(server.port, image.digest);
    assert.equal(await server.stop(), 0);
    server = undefined;
  });
  after(async () => {
    await server?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('rebuilds a dropped SQLite database; clients see exactly what they saw before', async () => {
    for (const file of ['registry.db', 'registry.db-wal', 'registry.db-shm']) await rm(path.join(root, file), { force: true });
    const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root };
    const rebuilt = await runRegistryCommand(['metadata', 'rebuild'], env);
    assert.equal(rebuilt.code, 0, rebuilt.stderr + rebuilt.stdout);
    assert.match(rebuilt.stdout, /rebuilt sqlite metadata from .*: 2 repositories, 5 manifests, 3 tags, \d+ blob links, 0 skipped/);
    assert.match(rebuilt.stderr, /manifests \[#+\] 5\/5/, 'a progress bar reaches the end');

    server = await startServerProcess({ root });
    assert.deepEqual(await observe(server.port, image.digest), before_);
    const host = `127.0.0.1:${server.port}`;
    const raw = (await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${host}/rebuild/multi:v1`)).stdout;
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, index.digest);
    const out = path.join(directory, 'out');
    await skopeo('copy', '--all', '--src-tls-verify=false', `docker://${host}/rebuild/multi:v1`, `oci:${out}:v1`);
    const outIndex = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(outIndex.manifests[0]?.digest, index.digest);
    await skopeo('copy', '--src-tls-verify=false', `docker://${host}/rebuild/app:stable`, `oci:${out}:app`);
    assert.equal(await server.stop(), 0);
    server = undefined;

    const again = await runRegistryCommand(['metadata', 'rebuild'], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds manifests/);
  });

  it('rebuilds into PostgreSQL: the way from SQLite to PostgreSQL', { skip: postgresSkip }, async () => {
    const database = await createTestDatabase();
    try {
      const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_DATABASE_URL: database.url };
      const rebuilt = await runRegistryCommand(['metadata', 'rebuild'], env);
      assert.equal(rebuilt.code, 0, rebuilt.stderr + rebuilt.stdout);
      assert.match(rebuilt.stdout, /rebuilt postgres metadata .*5 manifests, 3 tags/);
      server = await startServerProcess({ root, env: { REGISTRY_DATABASE_URL: database.url } });
      assert.deepEqual(await observe(server.port, image.digest), before_);
      await skopeo('inspect', '--tls-verify=false', `docker://127.0.0.1:${server.port}/rebuild/app:v1`);
      assert.equal(await server.stop(), 0);
      server = undefined;
    } finally {
      await database.drop();
    }
  });
});
