import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportImages, ExportError } from '../../src/transfer/export.js';
import { HttpImportTarget } from '../../src/transfer/http-target.js';
import { importArchive, ImportError } from '../../src/transfer/import.js';
import { LocalImportTarget } from '../../src/transfer/local-target.js';
import { TarWriter } from '../../src/transfer/tar.js';
import { allManifestTypes, imageManifest, indexOf, ociManifestType, pushManifest, referrerOf, type TestManifest } from '../helpers/images.js';
import { binary } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const storesOf = (registry: TestRegistry) => registry.stores;
/** `registry import` into a registry's stores, with the services its composition root built. */
const localTarget = (registry: TestRegistry) => {
  const { services } = registry.registry;
  return new LocalImportTarget(storesOf(registry), services.manifests, services.mirrorCache, services.mirror?.settings.upstreams ?? []);
};

async function writeArchive(file: string, entries: Array<[string, Buffer]>): Promise<void> {
  const tar = new TarWriter(createWriteStream(file));
  for (const [name, bytes] of entries) await tar.file(name, bytes);
  await tar.finish();
}

describe('export and import', () => {
  let directory: string;
  let source: TestRegistry;
  let image: TestManifest;
  let list: TestManifest;
  let signature: TestManifest;
  let bundle: string;

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-transfer-api-'));
    source = await createTestRegistry();
    image = imageManifest();
    await pushManifest(source.request, 'team/app', 'v1', image);
    const amd64 = imageManifest({ docker: true });
    const arm64 = imageManifest({ docker: true });
    await pushManifest(source.request, 'team/multi', amd64.digest, amd64);
    await pushManifest(source.request, 'team/multi', arm64.digest, arm64);
    list = indexOf([{ manifest: amd64, architecture: 'amd64' }, { manifest: arm64, architecture: 'arm64' }], true);
    await pushManifest(source.request, 'team/multi', 'v2', list);
    signature = referrerOf(image);
    await pushManifest(source.request, 'team/app', signature.digest, signature);
    bundle = path.join(directory, 'bundle.tar');
    const summary = await exportImages(storesOf(source), null, { references: ['team/app:v1', 'team/multi:v2'] }, createWriteStream(bundle));
    assert.deepEqual({ images: summary.images, manifests: summary.manifests, blobs: summary.blobs }, { images: 2, manifests: 5, blobs: 8 });
    const blobBytes = [...image.blobs, ...amd64.blobs, ...arm64.blobs, ...signature.blobs].reduce((sizes, blob) => sizes.set(blob.digest, blob.bytes.length), new Map<string, number>());
    assert.equal(summary.bytes, [...blobBytes.values()].reduce((sum, size) => sum + size, 0), 'bytes: the distinct blobs');
  });
  after(async () => {
    await source.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('imports into empty stores with every digest, blob, tag and referrer as it was', async () => {
    const target = await createTestRegistry();
    try {
      const summary = await importArchive(bundle, localTarget(target));
      assert.deepEqual(
        { images: summary.images, manifests: summary.manifests, blobs: summary.blobs, stored: summary.blobsStored, present: summary.blobsPresent },
        { images: 2, manifests: 5, blobs: 8, stored: 8, present: 0 },
        'counted as the export counted the same bundle',
      );
      for (const [repository, reference, manifest] of [['team/app', 'v1', image], ['team/multi', 'v2', list]] as const) {
        const response = await target.request.get(`/v2/${repository}/manifests/${reference}`).set('Accept', allManifestTypes).buffer(true).parse(binary).expect(200);
        assert.deepEqual(response.body, manifest.bytes);
      }
      for (const blob of image.blobs) {
        const response = await target.request.get(`/v2/team/app/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
        assert.deepEqual(response.body, blob.bytes);
      }
      const referrers = await target.request.get(`/v2/team/app/referrers/${image.digest}`).expect(200);
      assert.deepEqual((referrers.body as { manifests: Array<{ digest: string }> }).manifests.map((entry) => entry.digest), [signature.digest]);
      const again = await importArchive(bundle, localTarget(target));
      assert.deepEqual({ blobs: again.blobs, stored: again.blobsStored, present: again.blobsPresent, bytesStored: again.bytesStored }, { blobs: 8, stored: 0, present: 8, bytesStored: 0 });
    } finally {
      await target.close();
    }
  });

  it('imports into a running registry over HTTP', async () => {
    const target = await createTestRegistry();
    try {
      const { port } = await target.listen();
      const summary = await importArchive(bundle, new HttpImportTarget(`http://127.0.0.1:${port}`, null));
      assert.equal(summary.manifests, 5);
      const response = await target.request.get('/v2/team/multi/manifests/v2').set('Accept', allManifestTypes).expect(200);
      assert.equal(response.headers['docker-content-digest'], list.digest);
    } finally {
      await target.close();
    }
  });

  it('refuses archives that are not OCI layouts or lack a blob, and leaves nothing behind', async () => {
    const target = await createTestRegistry();
    try {
      const notLayout = path.join(directory, 'not-layout.tar');
      await writeArchive(notLayout, [['hello.txt', Buffer.from('hi')]]);
      await assert.rejects(importArchive(notLayout, localTarget(target)), (error: unknown) => error instanceof ImportError && /not an OCI image layout/.test(error.message));
      const missingBlob = path.join(directory, 'missing-blob.tar');
      await writeArchive(missingBlob, [
        ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
        [`blobs/sha256/${image.digest.slice(7)}`, image.bytes],
        ['index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: ociManifestType, digest: image.digest, size: image.bytes.length, annotations: { 'org.opencontainers.image.ref.name': 'team/app:v1' } }] }))],
      ]);
      await assert.rejects(importArchive(missingBlob, localTarget(target)), /lacks blob/);
      const bareTag = path.join(directory, 'bare-tag.tar');
      await writeArchive(bareTag, [
        ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
        ...image.blobs.map((blob): [string, Buffer] => [`blobs/sha256/${blob.digest.slice(7)}`, blob.bytes]),
        [`blobs/sha256/${image.digest.slice(7)}`, image.bytes],
        ['index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: ociManifestType, digest: image.digest, size: image.bytes.length, annotations: { 'org.opencontainers.image.ref.name': 'v7' } }] }))],
      ]);
      assert.deepEqual(await target.storedFiles(), []);
      assert.equal((await target.rowCounts()).blobs, 0);
      await assert.rejects(importArchive(bareTag, localTarget(target)), /--repository/);
      await importArchive(bareTag, localTarget(target), { repository: 'named/here' });
      await target.request.get('/v2/named/here/manifests/v7').set('Accept', allManifestTypes).expect(200);
    } finally {
      await target.close();
    }
  });

  it('export names what it cannot find', async () => {
    const out = path.join(directory, 'never.tar');
    await assert.rejects(exportImages(storesOf(source), null, { references: ['team/app:nope'] }, createWriteStream(out)), (error: unknown) => error instanceof ExportError && /team\/app:nope: not in the local repository team\/app/.test(error.message));
    await assert.rejects(exportImages(storesOf(source), null, { references: ['Bad Name:v1'] }, createWriteStream(out)), /invalid repository name/);
  });
});
