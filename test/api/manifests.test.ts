import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import {
  allManifestTypes,
  dockerListType,
  dockerManifestType,
  imageManifest,
  indexOf,
  manifestOf,
  ociIndexType,
  ociManifestType,
  pushManifest,
  sha256Of,
  type TestManifest,
} from '../helpers/images.js';
import { binary, envelopeCode, pushBlob } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

describe('manifests', () => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await createTestRegistry();
  });
  afterEach(async () => registry.close());

  function getManifest(repository: string, reference: string, accept = allManifestTypes) {
    return registry.request.get(`/v2/${repository}/manifests/${reference}`).set('Accept', accept).buffer(true).parse(binary);
  }

  async function manifestRows(): Promise<number> {
    const row = await registry.metadata.db.selectFrom('manifests').select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    return Number(row.count);
  }

  /** No manifest, tag or repository object was written, and the payload is not in the content store. */
  async function assertNoManifestStored(manifest: TestManifest): Promise<void> {
    assert.equal(await manifestRows(), 0);
    const files = await registry.storedFiles();
    assert.deepEqual(files.filter((file) => file.startsWith('repositories/')), []);
    assert.ok(!files.some((file) => file.includes(manifest.digest.slice(7))), 'manifest bytes were not stored');
  }

  for (const [label, manifest] of [
    ['OCI image manifest', imageManifest()],
    ['Docker schema 2 manifest', imageManifest({ docker: true })],
  ] as const) {
    it(`stores and serves the exact bytes of a ${label}`, async () => {
      const put = await pushManifest(registry.request, 'team/app', 'v1', manifest);
      assert.equal(put.headers['docker-content-digest'], manifest.digest);
      assert.equal(put.headers.location, `/v2/team/app/manifests/${manifest.digest}`);
      for (const reference of ['v1', manifest.digest]) {
        const got = await getManifest('team/app', reference).expect(200);
        assert.ok((got.body as Buffer).equals(manifest.bytes), reference);
        assert.equal(got.headers['content-type'], manifest.mediaType);
        assert.equal(got.headers['docker-content-digest'], manifest.digest);
        assert.equal(got.headers['content-length'], String(manifest.bytes.length));
        const head = await registry.request.head(`/v2/team/app/manifests/${reference}`).set('Accept', allManifestTypes).expect(200);
        assert.equal(head.headers['content-length'], String(manifest.bytes.length));
        assert.equal(head.headers['docker-content-digest'], manifest.digest);
        assert.equal(head.headers['content-type'], manifest.mediaType);
      }
      const cached = await registry.request.get('/v2/team/app/manifests/v1').set('Accept', allManifestTypes).set('If-None-Match', `"${manifest.digest}"`);
      assert.equal(cached.status, 304);
    });
  }

  it('writes storage so the database can be rebuilt: payload blob, repository link, tag link', async () => {
    const manifest = imageManifest();
    await pushManifest(registry.request, 'team/app', 'latest', manifest);
    const hex = manifest.digest.slice(7);
    const payload = await registry.storage.read(`blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
    const chunks: Buffer[] = [];
    for await (const chunk of payload) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(manifest.bytes));
    assert.ok(await registry.storage.stat(`repositories/team/app/_manifests/sha256/${hex}`));
    const tag: Buffer[] = [];
    for await (const chunk of await registry.storage.read('repositories/team/app/_tags/latest')) tag.push(chunk as Buffer);
    assert.equal(Buffer.concat(tag).toString(), manifest.digest);
  });

  it('an OCI index and a Docker manifest list keep their digests; children are pushed by digest first', async () => {
    const amd64 = imageManifest();
    const arm64 = imageManifest();
    await pushManifest(registry.request, 'multi/arch', amd64.digest, amd64);
    await pushManifest(registry.request, 'multi/arch', arm64.digest, arm64);
    const index = indexOf([{ manifest: amd64, architecture: 'amd64' }, { manifest: arm64, architecture: 'arm64' }]);
    const put = await pushManifest(registry.request, 'multi/arch', 'oci', index);
    assert.equal(put.headers['docker-content-digest'], index.digest);
    assert.ok(((await getManifest('multi/arch', 'oci').expect(200)).body as Buffer).equals(index.bytes));

    const dockerAmd64 = imageManifest({ docker: true });
    await pushManifest(registry.request, 'multi/arch', dockerAmd64.digest, dockerAmd64);
    const list = indexOf([{ manifest: dockerAmd64, architecture: 'amd64' }], true);
    await pushManifest(registry.request, 'multi/arch', 'docker', list);
    const served = await getManifest('multi/arch', 'docker').expect(200);
    assert.equal(served.headers['content-type'], dockerListType);
    assert.ok((served.body as Buffer).equals(list.bytes));
  });

  it('negotiates Accept as Distribution does', async () => {
    const oci = imageManifest();
    await pushManifest(registry.request, 'accept/test', 'oci', oci);
    const refused = await getManifest('accept/test', 'oci', dockerManifestType).expect(404);
    assert.equal(envelopeCode(refused), 'MANIFEST_UNKNOWN');
    const noAccept = await registry.request.get('/v2/accept/test/manifests/oci').expect(404);
    assert.match(JSON.stringify(noAccept.body), /Accept header does not support OCI manifests/);

    const index = indexOf([{ manifest: oci, architecture: 'amd64' }]);
    await pushManifest(registry.request, 'accept/test', 'index', index);
    assert.equal(envelopeCode(await getManifest('accept/test', 'index', ociManifestType).expect(404)), 'MANIFEST_UNKNOWN');

    // A manifest list asked for by tag by a client that does not take lists gets its linux/amd64 image.
    const amd64 = imageManifest({ docker: true });
    await pushManifest(registry.request, 'accept/test', amd64.digest, amd64);
    const list = indexOf([{ manifest: amd64, architecture: 'amd64' }], true);
    await pushManifest(registry.request, 'accept/test', 'list', list);
    const resolved = await getManifest('accept/test', 'list', dockerManifestType).expect(200);
    assert.equal(resolved.headers['docker-content-digest'], amd64.digest);
    assert.ok((resolved.body as Buffer).equals(amd64.bytes));
  });

  it('a manifest naming a blob the repository lacks is 400 MANIFEST_BLOB_UNKNOWN and nothing is stored', async () => {
    const manifest = imageManifest();
    const [config] = manifest.blobs;
    await pushBlob(registry.request, 'team/app', config!);
    const response = await registry.request.put('/v2/team/app/manifests/v1').set('Content-Type', ociManifestType).send(manifest.bytes.toString('utf8')).expect(400);
    assert.equal(envelopeCode(response), 'MANIFEST_BLOB_UNKNOWN');
    assert.equal((response.body as { errors: Array<{ detail: { digest: string } }> }).errors[0]?.detail.digest, manifest.blobs[1]?.digest);
    await assertNoManifestStored(manifest);
    // A blob held by another repository does not count.
    await pushBlob(registry.request, 'other/repo', manifest.blobs[1]!);
    await registry.request.put('/v2/team/app/manifests/v1').set('Content-Type', ociManifestType).send(manifest.bytes.toString('utf8')).expect(400);
    await assertNoManifestStored(manifest);
  });

  it('an index naming a manifest the repository lacks is 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const child = imageManifest();
    const index = indexOf([{ manifest: child, architecture: 'amd64' }]);
    const response = await registry.request.put('/v2/team/app/manifests/v1').set('Content-Type', ociIndexType).send(index.bytes.toString('utf8')).expect(400);
    assert.equal(envelopeCode(response), 'MANIFEST_BLOB_UNKNOWN');
    await assertNoManifestStored(index);
  });

  const config = testBlob(10);
  const validConfig = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: 10 };
  const invalidBodies: Array<[string, string, string]> = [
    ['not JSON', '{"schemaVersion": 2,', ociManifestType],
    ['a JSON array', '[]', ociManifestType],
    ['schema version 1', JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }), ''],
    ['no config', JSON.stringify({ schemaVersion: 2, mediaType: ociManifestType, layers: [] }), ociManifestType],
    ['a bad layer digest', JSON.stringify({ schemaVersion: 2, config: validConfig, layers: [{ mediaType: 'x', digest: 'sha256:zz', size: 1 }] }), ociManifestType],
    ['a negative size', JSON.stringify({ schemaVersion: 2, config: { ...validConfig, size: -1 }, layers: [] }), ociManifestType],
    ['mediaType against Content-Type', JSON.stringify({ schemaVersion: 2, mediaType: dockerManifestType, config: validConfig, layers: [] }), ociManifestType],
    ['an unknown media type', JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-foo', config: validConfig, layers: [] }), 'application/x-foo'],
    ['index with layers', JSON.stringify({ schemaVersion: 2, mediaType: ociIndexType, manifests: [], layers: [] }), ociIndexType],
    ['string schemaVersion', JSON.stringify({ schemaVersion: '2', config: validConfig, layers: [] }), ociManifestType],
    ['an artifactType that is no media type', JSON.stringify({ schemaVersion: 2, artifactType: 'sbom for "you"', config: validConfig, layers: [] }), ociManifestType],
    ['a descriptor artifactType with markup', JSON.stringify({ schemaVersion: 2, config: validConfig, layers: [], subject: { ...validConfig, artifactType: '<img src=x onerror=alert(1)>' } }), ociManifestType],
  ];
  for (const [label, body, contentType] of invalidBodies) {
    it(`a manifest with ${label} is 400 MANIFEST_INVALID and nothing is stored`, async () => {
      const manifest = manifestOf({}, contentType);
      const request = registry.request.put('/v2/team/app/manifests/v1');
      if (contentType) request.set('Content-Type', contentType);
      const response = await request.send(body).expect(400);
      assert.equal(envelopeCode(response), 'MANIFEST_INVALID');
      await assertNoManifestStored(manifest);
      assert.equal((await registry.rowCounts()).repositories, 0);
    });
  }

  it('descriptor sizes that are not the size of the content they name are 400 MANIFEST_INVALID, and nothing is stored', async () => {
    const manifest = imageManifest();
    for (const blob of manifest.blobs) await pushBlob(registry.request, 'team/app', blob);
    const body = JSON.parse(manifest.bytes.toString()) as { layers: Array<{ size: number }> };
    body.layers[0]!.size = 10 ** 15;
    const lying = manifestOf(body, ociManifestType);
    const response = await registry.request.put('/v2/team/app/manifests/v1').set('Content-Type', ociManifestType).send(lying.bytes.toString()).expect(400);
    assert.equal(envelopeCode(response), 'MANIFEST_INVALID');
    assert.match(String((response.body as { errors: Array<{ message: string }> }).errors[0]?.message), new RegExp(`${manifest.blobs[1]!.digest} gives 1000000000000000 bytes; it holds 3000`));
    await assertNoManifestStored(lying);
    const child = imageManifest();
    await pushManifest(registry.request, 'team/app', child.digest, child);
    const index = JSON.parse(indexOf([{ manifest: child, architecture: 'amd64' }]).bytes.toString()) as { manifests: Array<{ size: number }> };
    index.manifests[0]!.size += 1;
    const wrongChild = manifestOf(index, ociIndexType);
    assert.equal(envelopeCode(await registry.request.put('/v2/team/app/manifests/v2').set('Content-Type', ociIndexType).send(wrongChild.bytes.toString()).expect(400)), 'MANIFEST_INVALID');
    assert.equal(await manifestRows(), 1, 'only the child pushed before');
  });

  it('a manifest of exactly 4 MiB is taken and served byte for byte', async () => {
    const manifest = imageManifest();
    for (const blob of manifest.blobs) await pushBlob(registry.request, 'team/app', blob);
    // JSON may end in whitespace: the same manifest, padded to the limit.
    const padded = Buffer.concat([manifest.bytes, Buffer.alloc(4 * 1024 * 1024 - manifest.bytes.length, 0x20)]);
    const put = await registry.request.put('/v2/team/app/manifests/v1').set('Content-Type', ociManifestType).send(padded.toString('utf8')).expect(201);
    assert.equal(put.headers['docker-content-digest'], sha256Of(padded));
    const got = await getManifest('team/app', 'v1').expect(200);
    assert.deepEqual(got.body, padded);
  });

  it('a manifest over 4 MiB is 413 and nothing is stored', async () => {
    const huge = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    const response = await registry.request.put('/v2/team/app/manifests/v1').set('Content-Type', ociManifestType).send(huge.toString('utf8')).expect(413);
    assert.equal(envelopeCode(response), 'TOO_LARGE');
    assert.equal(await manifestRows(), 0);
    assert.equal((await registry.rowCounts()).repositories, 0);
  });

  it('PUT by digest must match the body', async () => {
    const manifest = imageManifest();
    await pushManifest(registry.request, 'team/app', manifest.digest, manifest);
    const other = imageManifest();
    for (const blob of other.blobs) await pushBlob(registry.request, 'team/app', blob);
    const response = await registry.request.put(`/v2/team/app/manifests/${manifest.digest}`).set('Content-Type', ociManifestType).send(other.bytes.toString('utf8')).expect(400);
    assert.equal(envelopeCode(response), 'DIGEST_INVALID');
    assert.equal(await manifestRows(), 1);
  });

  for (const tag of ['-leading-dash', '.dot', '.INVALID_MANIFEST_NAME', 'a'.repeat(129), 'bad%20tag', 'sha256:abc', 'md5:0123456789abcdef0123456789abcdef']) {
    it(`the reference ${JSON.stringify(tag.slice(0, 20))} is 400 on PUT and DELETE, 404 MANIFEST_UNKNOWN on GET and HEAD, and stores nothing`, async () => {
      const manifest = imageManifest();
      for (const blob of manifest.blobs) await pushBlob(registry.request, 'team/app', blob);
      const put = await registry.request.put(`/v2/team/app/manifests/${tag}`).set('Content-Type', ociManifestType).send(manifest.bytes.toString('utf8'));
      assert.equal(put.status, 400);
      assert.ok(['TAG_INVALID', 'DIGEST_INVALID'].includes(envelopeCode(put) ?? ''), envelopeCode(put));
      const get = await registry.request.get(`/v2/team/app/manifests/${tag}`).set('Accept', allManifestTypes);
      assert.equal(get.status, 404);
      assert.equal(envelopeCode(get), 'MANIFEST_UNKNOWN');
      const head = await registry.request.head(`/v2/team/app/manifests/${tag}`).set('Accept', allManifestTypes);
      assert.equal(head.status, 404);
      assert.equal(head.headers['content-type'], 'application/json; charset=utf-8');
      assert.equal((await registry.request.delete(`/v2/team/app/manifests/${tag}`)).status, 400);
      assert.equal(await manifestRows(), 0);
      assert.deepEqual((await registry.storedFiles()).filter((file) => file.startsWith('repositories/team/app/_manifests')), []);
    });
  }

  it('a GET of a reference that cannot exist is 404 MANIFEST_UNKNOWN also in an unknown repository, and creates nothing', async () => {
    const response = await registry.request.get('/v2/no/such/manifests/.INVALID_MANIFEST_NAME').set('Accept', allManifestTypes).expect(404);
    assert.equal(envelopeCode(response), 'MANIFEST_UNKNOWN');
    assert.equal((await registry.rowCounts()).repositories, 0);
  });

  it('unknown repositories are NAME_UNKNOWN, unknown manifests MANIFEST_UNKNOWN', async () => {
    assert.equal(envelopeCode(await getManifest('no/such', 'latest').expect(404)), 'NAME_UNKNOWN');
    await pushManifest(registry.request, 'team/app', 'v1', imageManifest());
    assert.equal(envelopeCode(await getManifest('team/app', 'v2').expect(404)), 'MANIFEST_UNKNOWN');
    assert.equal(envelopeCode(await getManifest('team/app', imageManifest().digest).expect(404)), 'MANIFEST_UNKNOWN');
    await registry.request.head('/v2/team/app/manifests/v2').expect(404);
  });

  it('DELETE by tag removes only the tag (and its storage link)', async () => {
    const manifest = imageManifest();
    await pushManifest(registry.request, 'team/app', 'v1', manifest);
    await registry.request.put('/v2/team/app/manifests/v2').set('Content-Type', ociManifestType).send(manifest.bytes.toString('utf8')).expect(201);
    await registry.request.delete('/v2/team/app/manifests/v1').expect(202);
    assert.equal(envelopeCode(await getManifest('team/app', 'v1').expect(404)), 'MANIFEST_UNKNOWN');
    await getManifest('team/app', 'v2').expect(200);
    await getManifest('team/app', manifest.digest).expect(200);
    assert.equal(await registry.storage.stat('repositories/team/app/_tags/v1'), null);
    assert.ok(await registry.storage.stat('repositories/team/app/_tags/v2'));
    assert.equal(envelopeCode(await registry.request.delete('/v2/team/app/manifests/v1').expect(404)), 'MANIFEST_UNKNOWN');
  });

  it('DELETE by digest removes the manifest and every tag pointing at it', async () => {
    const manifest = imageManifest();
    await pushManifest(registry.request, 'team/app', 'v1', manifest);
    await registry.request.put('/v2/team/app/manifests/stable').set('Content-Type', ociManifestType).send(manifest.bytes.toString('utf8')).expect(201);
    await registry.request.delete(`/v2/team/app/manifests/${manifest.digest}`).expect(202);
    for (const reference of ['v1', 'stable', manifest.digest]) await getManifest('team/app', reference).expect(404);
    const tags = await registry.request.get('/v2/team/app/tags/list').expect(200);
    assert.deepEqual(tags.body, { name: 'team/app', tags: [] });
    const files = await registry.storedFiles();
    assert.deepEqual(files.filter((file) => file.startsWith('repositories/')), []);
  });

  it('a manifest still named by an index cannot be deleted before the index (409)', async () => {
    const child = imageManifest();
    await pushManifest(registry.request, 'team/app', child.digest, child);
    const index = indexOf([{ manifest: child, architecture: 'amd64' }]);
    await pushManifest(registry.request, 'team/app', 'multi', index);
    const refused = await registry.request.delete(`/v2/team/app/manifests/${child.digest}`).expect(409);
    assert.equal(envelopeCode(refused), 'CONFLICT');
    await registry.request.delete(`/v2/team/app/manifests/${index.digest}`).expect(202);
    await registry.request.delete(`/v2/team/app/manifests/${child.digest}`).expect(202);
  });

  it('20 clients pushing the same tag at once leave one consistent tag', async () => {
    const manifests = Array.from({ length: 20 }, () => imageManifest({ layerSize: 100 }));
    for (const manifest of manifests) for (const blob of manifest.blobs) await pushBlob(registry.request, 'race/tag', blob);
    const statuses = await Promise.all(
      manifests.map(async (manifest) => (await registry.request.put('/v2/race/tag/manifests/latest').set('Content-Type', ociManifestType).send(manifest.bytes.toString('utf8'))).status),
    );
    assert.deepEqual(statuses, Array(20).fill(201));
    const served = await getManifest('race/tag', 'latest').expect(200);
    const digest = served.headers['docker-content-digest'] as string;
    assert.ok(manifests.some((manifest) => manifest.digest === digest));
    const link: Buffer[] = [];
    for await (const chunk of await registry.storage.read('repositories/race/tag/_tags/latest')) link.push(chunk as Buffer);
    assert.equal(Buffer.concat(link).toString(), digest, 'the storage link and the row agree');
    const tagRows = await registry.metadata.db.selectFrom('tags').selectAll().execute();
    assert.equal(tagRows.length, 1);
    assert.equal(await manifestRows(), 20);
  });

  it('deletes are refused with 405 UNSUPPORTED when disabled', async () => {
    const readOnly = await createTestRegistry({ deleteEnabled: false });
    try {
      const manifest = imageManifest();
      await pushManifest(readOnly.request, 'team/app', 'v1', manifest);
      assert.equal(envelopeCode(await readOnly.request.delete('/v2/team/app/manifests/v1').expect(405)), 'UNSUPPORTED');
      assert.equal(envelopeCode(await readOnly.request.delete(`/v2/team/app/manifests/${manifest.digest}`).expect(405)), 'UNSUPPORTED');
      await readOnly.request.get('/v2/team/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
    } finally {
      await readOnly.close();
    }
  });
});
