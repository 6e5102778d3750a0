import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { buildServices, registrySettings } from '../../src/composition.js';
import { resolveConfig } from '../../src/config/load.js';
import { allManifestTypes, imageManifest, pushManifest } from '../helpers/images.js';
import { envelopeCode, pushBlob } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const rules = [
  { repositories: ['prod/**'], tags: ['v*', 'release-*'] },
  { repositories: ['team/*'], tags: ['stable'] },
];

async function currentDigest(registry: TestRegistry, repository: string, tag: string): Promise<string | undefined> {
  const response = await registry.request.head(`/v2/${repository}/manifests/${tag}`).set('Accept', allManifestTypes);
  return response.status === 200 ? (response.headers['docker-content-digest'] as string) : undefined;
}

async function tagEvents(registry: TestRegistry): Promise<Array<{ action: string; tag: string; to: string | null }>> {
  return ((await registry.request.get('/api/v1/audit/events?n=1000').expect(200)).body as { events: Array<{ action: string; tag: string; to: string | null }> }).events;
}

describe('immutable tags (tags.immutable): created once, then never moved or deleted', () => {
  let registry: TestRegistry;
  const first = imageManifest();
  const second = imageManifest();
  before(async () => {
    registry = await createTestRegistry({ tags: { immutable: rules } });
    await pushManifest(registry.request, 'prod/api', 'v1.0.0', first);
    // The second image's blobs are in the repository already: a refused push then writes nothing at all.
    for (const blob of second.blobs) await pushBlob(registry.request, 'prod/api', blob);
  });
  after(async () => registry?.close());

  it('a push of the same digest again succeeds (a CI retry); of another digest is 403 DENIED naming the rule, and stores nothing', async () => {
    await pushManifest(registry.request, 'prod/api', 'v1.0.0', first, 201);
    const files = await registry.storedFiles();
    const rows = await registry.rowCounts();
    const events = await tagEvents(registry);
    const refused = await pushManifest(registry.request, 'prod/api', 'v1.0.0', second, 403);
    assert.equal(envelopeCode(refused), 'DENIED');
    assert.match(refused.body.errors[0].message, /prod\/api:v1\.0\.0 is immutable \(tags\.immutable\[0\]: repositories prod\/\*\*, tags v\*, release-\*\): it cannot be moved/);
    assert.equal(refused.body.errors[0].detail.rule, 'tags.immutable[0]');
    assert.equal(await currentDigest(registry, 'prod/api', 'v1.0.0'), first.digest);
    assert.deepEqual(await registry.storedFiles(), files, 'no byte written');
    assert.deepEqual(await registry.rowCounts(), rows);
    assert.deepEqual(await tagEvents(registry), events, 'no event');
  });

  it('five pushes racing to create one immutable tag: one wins, the others are refused in the transaction', async () => {
    const contenders = Array.from({ length: 5 }, () => imageManifest());
    for (const manifest of contenders) for (const blob of manifest.blobs) await pushBlob(registry.request, 'prod/api', blob);
    const statuses = await Promise.all(
      contenders.map(async (manifest) => (await registry.request.put('/v2/prod/api/manifests/v9.0.0').set('Content-Type', manifest.mediaType).send(manifest.bytes.toString('utf8'))).status),
    );
    assert.deepEqual([...statuses].sort(), [201, 403, 403, 403, 403]);
    const winner = contenders[statuses.indexOf(201)]!;
    assert.equal(await currentDigest(registry, 'prod/api', 'v9.0.0'), winner.digest);
    const events = (await tagEvents(registry)).filter((event) => event.tag === 'v9.0.0');
    assert.deepEqual(events.map((event) => [event.action, event.to]), [['created', winner.digest]]);
  });

  it('a tag no rule covers moves as usual: latest in prod/api, v1.0.0 elsewhere, a team/* rule only for stable', async () => {
    await pushManifest(registry.request, 'prod/api', 'latest', first);
    await pushManifest(registry.request, 'dev/api', 'v1.0.0', first);
    await pushManifest(registry.request, 'dev/api', 'v1.0.0', second);
    await pushManifest(registry.request, 'team/web', 'stable', first);
    await pushManifest(registry.request, 'team/web', 'nightly', first);
    await pushManifest(registry.request, 'team/web', 'nightly', second);
    assert.equal(envelopeCode(await pushManifest(registry.request, 'team/web', 'stable', second, 403)), 'DENIED');
    assert.equal(await currentDigest(registry, 'dev/api', 'v1.0.0'), second.digest);
  });

  it('deleting the tag, or the manifest it points at by digest, is refused and leaves both', async () => {
    const byTag = await registry.request.delete('/v2/prod/api/manifests/v1.0.0').expect(403);
    assert.match(byTag.body.errors[0].message, /is immutable .*: it cannot be deleted/);
    await pushManifest(registry.request, 'prod/api', 'release-2', second);
    const byDigest = await registry.request.delete(`/v2/prod/api/manifests/${first.digest}`).expect(403);
    assert.match(byDigest.body.errors[0].message, /prod\/api:v1\.0\.0 is immutable .*: the manifest it points at cannot be deleted/);
    assert.equal(await currentDigest(registry, 'prod/api', 'v1.0.0'), first.digest);
    assert.equal(await currentDigest(registry, 'prod/api', 'latest'), first.digest, 'the other tag on that manifest stayed too');
    // A manifest only mutable tags point at can go.
    await pushManifest(registry.request, 'team/web', 'scratch', imageManifest());
    const scratch = await currentDigest(registry, 'team/web', 'scratch');
    await registry.request.delete(`/v2/team/web/manifests/${scratch}`).expect(202);
  });

  it('a restore obeys the rules: an immutable tag is not moved back', async () => {
    // prod/api:v2 moved before the rule covered it (a registry without rules), then a rule came.
    const open = await createTestRegistry();
    try {
      const [a, b] = [imageManifest(), imageManifest()];
      await pushManifest(open.request, 'prod/api', 'v2', a);
      await pushManifest(open.request, 'prod/api', 'v2', b);
      // The same stores, with services built as a registry configured with the rules builds them.
      const { audit } = buildServices({ stores: open.stores, logger: pino({ level: 'silent' }), settings: registrySettings(resolveConfig({ tags: { immutable: rules } })) }).services;
      const origin = { actor: 'alice', authMethod: 'basic', address: '192.0.2.1', userAgent: null, requestId: 'restore' };
      await assert.rejects(audit.restore('prod/api', 'v2', { digest: a.digest }, origin), (error: Error) => /prod\/api:v2 is immutable .*cannot be moved/.test(error.message));
      assert.equal(await currentDigest(open, 'prod/api', 'v2'), b.digest);
      // Without the rule the same restore goes through.
      await open.request.post('/api/v1/repositories/prod/api/tags/v2/restore').set('Content-Type', 'application/json').send({ digest: a.digest }).expect(200);
    } finally {
      await open.close();
    }
  });

  it('rules come from the file or from REGISTRY_TAGS_IMMUTABLE as JSON; a bad rule stops the start with the key named', async () => {
    const { resolveConfig, ConfigError } = await import('../../src/config/load.js');
    const fromEnv = resolveConfig({}, { REGISTRY_TAGS_IMMUTABLE: '[{"repositories":["prod/**"],"tags":"v*"}]' }, '/srv');
    assert.deepEqual(fromEnv.tags.immutable, [{ repositories: ['prod/**'], tags: ['v*'] }]);
    for (const [value, message] of [
      [[{ repositories: ['prod/**'] }], /tags\.immutable\[0\]\.tags: expected a non-empty list/],
      [[{ repositories: ['prod/**'], tags: ['v*'], branches: ['x'] }], /tags\.immutable\[0\]\.branches: unknown field/],
      ['not a list', /tags\.immutable: expected JSON \(a list of entries\)/],
      [{ repositories: ['prod/**'] }, /tags\.immutable: expected a list of entries, got a section/],
    ] as const) {
      assert.throws(() => resolveConfig({ tags: { immutable: value } }, {}, '/srv'), (error: unknown) => error instanceof ConfigError && message.test(error.message));
    }
  });
});
