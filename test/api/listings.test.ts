import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { imageManifest, manifestOf, ociManifestType, pushManifest } from '../helpers/images.js';
import { envelopeCode, pushBlob } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

describe('tag lists', () => {
  let registry: TestRegistry;
  const tags = ['v1', 'latest', 'A-upper', '_under', 'v10', 'v2', 'v1.0.1', 'stable'];
  before(async () => {
    registry = await createTestRegistry();
    const manifest = imageManifest();
    await pushManifest(registry.request, 'team/app', tags[0]!, manifest);
    for (const tag of tags.slice(1)) {
      await registry.request.put(`/v2/team/app/manifests/${tag}`).set('Content-Type', ociManifestType).send(manifest.bytes.toString()).expect(201);
    }
  });
  after(async () => registry.close());

  it('lists every tag in lexical (byte) order', async () => {
    const response = await registry.request.get('/v2/team/app/tags/list').expect(200);
    assert.deepEqual(response.body, { name: 'team/app', tags: [...tags].sort() });
    assert.equal(response.headers.link, undefined);
  });

  it('pages with n and last, linking the next page (RFC 5988)', async () => {
    const sorted = [...tags].sort();
    const collected: string[] = [];
    let path: string | undefined = '/v2/team/app/tags/list?n=3';
    let pages = 0;
    while (path) {
      const response = await registry.request.get(path).expect(200);
      const page = (response.body as { tags: string[] }).tags;
      assert.ok(page.length <= 3);
      collected.push(...page);
      const link = response.headers.link as string | undefined;
      path = link ? /^<([^>]+)>; rel="next"$/.exec(link)?.[1] : undefined;
      pages++;
    }
    assert.deepEqual(collected, sorted);
    assert.equal(pages, 3);
    const afterLast = await registry.request.get(`/v2/team/app/tags/list?last=${sorted[5]}`).expect(200);
    assert.deepEqual((afterLast.body as { tags: string[] }).tags, sorted.slice(6));
  });

  it('n=0 gives an empty list; a bad n is 400 PAGINATION_NUMBER_INVALID', async () => {
    assert.deepEqual((await registry.request.get('/v2/team/app/tags/list?n=0').expect(200)).body, { name: 'team/app', tags: [] });
    for (const n of ['-1', 'ten', '1.5']) {
      assert.equal(envelopeCode(await registry.request.get(`/v2/team/app/tags/list?n=${n}`).expect(400)), 'PAGINATION_NUMBER_INVALID');
    }
  });

  it('an unknown repository is 404 NAME_UNKNOWN', async () => {
    assert.equal(envelopeCode(await registry.request.get('/v2/no/such/tags/list').expect(404)), 'NAME_UNKNOWN');
  });
});

describe('catalog', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await createTestRegistry();
  });
  after(async () => registry.close());

  it('lists repositories holding manifests, pages with Link, and forgets one whose last manifest is deleted', async () => {
    const names = ['zeta', 'alpha/one', 'alpha/two', 'beta', 'gamma/deep/name'];
    const digests = new Map<string, string>();
    for (const name of names) {
      const manifest = imageManifest();
      await pushManifest(registry.request, name, 'v1', manifest);
      digests.set(name, manifest.digest);
    }
    await pushBlob(registry.request, 'blobs/only', testBlob(10));
    const all = await registry.request.get('/v2/_catalog').expect(200);
    assert.deepEqual(all.body, { repositories: [...names].sort() });

    const first = await registry.request.get('/v2/_catalog?n=2').expect(200);
    assert.deepEqual(first.body, { repositories: ['alpha/one', 'alpha/two'] });
    assert.equal(first.headers.link, '</v2/_catalog?n=2&last=alpha%2Ftwo>; rel="next"');
    const second = await registry.request.get('/v2/_catalog?n=2&last=alpha%2Ftwo').expect(200);
    assert.deepEqual(second.body, { repositories: ['beta', 'gamma/deep/name'] });

    await registry.request.delete(`/v2/beta/manifests/${digests.get('beta')}`).expect(202);
    const after = await registry.request.get('/v2/_catalog').expect(200);
    assert.deepEqual((after.body as { repositories: string[] }).repositories, ['alpha/one', 'alpha/two', 'gamma/deep/name', 'zeta']);
  });
});

describe('referrers', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await createTestRegistry();
  });
  after(async () => registry.close());

  const emptyConfig = Buffer.from('{}');

  function artifact(subject: { digest: string; size: number }, artifactType: string, annotations: Record<string, string>) {
    const layer = testBlob(64);
    const config = { bytes: emptyConfig, digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', sha512: '' };
    return manifestOf(
      {
        schemaVersion: 2,
        mediaType: ociManifestType,
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config.digest, size: 2 },
        layers: [{ mediaType: 'application/octet-stream', digest: layer.digest, size: 64 }],
        subject: { mediaType: ociManifestType, digest: subject.digest, size: subject.size },
        annotations,
      },
      ociManifestType,
      [config, layer],
    );
  }

  it('lists manifests whose subject is a digest, with artifactType and annotations, filtered on request', async () => {
    const image = imageManifest();
    await pushManifest(registry.request, 'team/app', 'v1', image);
    const signature = artifact({ digest: image.digest, size: image.bytes.length }, 'application/vnd.example.signature', { 'org.example.signer': 'ci' });
    const sbom = artifact({ digest: image.digest, size: image.bytes.length }, 'application/spdx+json', { 'org.example.kind': 'sbom' });
    const put = await pushManifest(registry.request, 'team/app', signature.digest, signature);
    assert.equal(put.headers['oci-subject'], image.digest);
    await pushManifest(registry.request, 'team/app', 'sbom', sbom);

    const all = await registry.request.get(`/v2/team/app/referrers/${image.digest}`).expect(200);
    assert.equal(all.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
    assert.equal(all.headers['oci-filters-applied'], undefined);
    const index = JSON.parse(all.text) as { schemaVersion: number; mediaType: string; manifests: Array<Record<string, unknown>> };
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(
      index.manifests.sort((a, b) => String(a.digest).localeCompare(String(b.digest))),
      [
        { mediaType: ociManifestType, digest: signature.digest, size: signature.bytes.length, artifactType: 'application/vnd.example.signature', annotations: { 'org.example.signer': 'ci' } },
        { mediaType: ociManifestType, digest: sbom.digest, size: sbom.bytes.length, artifactType: 'application/spdx+json', annotations: { 'org.example.kind': 'sbom' } },
      ].sort((a, b) => a.digest.localeCompare(b.digest)),
    );

    const filtered = await registry.request.get(`/v2/team/app/referrers/${image.digest}?artifactType=application/spdx%2Bjson`).expect(200);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual((JSON.parse(filtered.text) as { manifests: Array<{ digest: string }> }).manifests.map((entry) => entry.digest), [sbom.digest]);
  });

  it('answers an empty index for an unknown digest or repository, and 400 for a malformed digest', async () => {
    const unknown = imageManifest().digest;
    for (const path of [`/v2/team/app/referrers/${unknown}`, `/v2/no/such/referrers/${unknown}`]) {
      const response = await registry.request.get(path).expect(200);
      assert.deepEqual(JSON.parse(response.text), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });
    }
    assert.equal(envelopeCode(await registry.request.get('/v2/team/app/referrers/sha256:nope').expect(400)), 'DIGEST_INVALID');
  });
});
