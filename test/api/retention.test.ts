import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RetentionReport } from '../../src/retention/retention-service.js';
import { allManifestTypes, imageManifest, pushManifest, type TestManifest } from '../helpers/images.js';
import { envelopeCode } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const day = 86_400_000;

interface Seeded {
  tag: string;
  manifest: TestManifest;
  pushedDaysAgo: number;
  pulledDaysAgo: number | null;
}

/** Pushes each tag, then sets its push and pull times as the seed says (the clock the policies read). */
async function seed(registry: TestRegistry, repository: string, tags: Array<Omit<Seeded, 'manifest'>>): Promise<Seeded[]> {
  const seeded: Seeded[] = [];
  const now = Date.now();
  for (const entry of tags) {
    const manifest = imageManifest();
    await pushManifest(registry.request, repository, entry.tag, manifest);
    const db = registry.metadata.db;
    const row = await db.selectFrom('repositories').select('id').where('name', '=', repository).executeTakeFirstOrThrow();
    await db
      .updateTable('tags')
      .set({ updated_at: now - entry.pushedDaysAgo * day, pulled_at: entry.pulledDaysAgo === null ? null : now - entry.pulledDaysAgo * day })
      .where('repository_id', '=', row.id)
      .where('name', '=', entry.tag)
      .execute();
    seeded.push({ ...entry, manifest });
  }
  return seeded;
}

async function tagList(registry: TestRegistry, repository: string): Promise<string[]> {
  return ((await registry.request.get(`/v2/${repository}/tags/list`).expect(200)).body as { tags: string[] }).tags;
}

async function retention(registry: TestRegistry, dryRun: boolean): Promise<RetentionReport> {
  return (await registry.request.post(`/api/v1/retention?dryrun=${dryRun}`).expect(200)).body as RetentionReport;
}

describe('retention policies over HTTP: tags no clause keeps are deleted, as audit events of the policy', () => {
  let registry: TestRegistry;
  let seeded: Seeded[];
  before(async () => {
    registry = await createTestRegistry({
      retention: { policies: [{ repositories: ['app/**'], keep: { mostRecent: 2, pulledWithin: '7d', tags: ['keep-*'] }, untagged: 'delete' }] },
      audit: { recordPulls: true },
      tags: { immutable: [{ repositories: ['app/**'], tags: ['release-*'] }] },
    });
    seeded = await seed(registry, 'app/web', [
      { tag: 'newest', pushedDaysAgo: 1, pulledDaysAgo: null },
      { tag: 'second', pushedDaysAgo: 2, pulledDaysAgo: null },
      { tag: 'third', pushedDaysAgo: 3, pulledDaysAgo: null },
      { tag: 'pulled', pushedDaysAgo: 40, pulledDaysAgo: 2 },
      { tag: 'stale', pushedDaysAgo: 50, pulledDaysAgo: 30 },
      { tag: 'keep-forever', pushedDaysAgo: 300, pulledDaysAgo: null },
      { tag: 'release-1', pushedDaysAgo: 400, pulledDaysAgo: null },
      { tag: 'latest', pushedDaysAgo: 500, pulledDaysAgo: null },
    ]);
    await seed(registry, 'other/web', [{ tag: 'ancient', pushedDaysAgo: 900, pulledDaysAgo: null }]);
  });
  after(async () => registry?.close());

  it('a dry run lists what would go and changes nothing', async () => {
    const events = (await registry.request.get('/api/v1/audit/events?n=1000').expect(200)).body.events.length;
    const report = await retention(registry, true);
    assert.equal(report.dryRun, true);
    assert.deepEqual(report.deleted.map((entry) => entry.tag).sort(), ['stale', 'third']);
    const stale = report.deleted.find((entry) => entry.tag === 'stale')!;
    assert.equal(stale.digest, seeded.find((entry) => entry.tag === 'stale')!.manifest.digest);
    assert.equal(stale.policy, 'retention.policies[0]');
    assert.ok(stale.pulledAt !== null && stale.pushedAt < stale.pulledAt);
    assert.equal((await tagList(registry, 'app/web')).length, 8);
    assert.equal((await registry.request.get('/api/v1/audit/events?n=1000').expect(200)).body.events.length, events, 'no event');
  });

  it('a real run deletes them: tags gone, manifests kept by the audit time machine, each deletion an event of the policy', async () => {
    const report = await retention(registry, false);
    assert.deepEqual(report.deleted.map((entry) => entry.tag).sort(), ['stale', 'third']);
    assert.deepEqual((await tagList(registry, 'app/web')).sort(), ['keep-forever', 'latest', 'newest', 'pulled', 'release-1', 'second']);
    assert.deepEqual(await tagList(registry, 'other/web'), ['ancient'], 'a repository no policy names is untouched');
    const events = (await registry.request.get('/api/v1/audit/events?action=deleted').expect(200)).body.events as Array<{ tag: string; actor: string; authMethod: string; from: string }>;
    assert.deepEqual(events.map((event) => [event.tag, event.actor, event.authMethod]).sort(), [
      ['stale', 'retention.policies[0]', 'system'],
      ['third', 'retention.policies[0]', 'system'],
    ]);
    assert.ok(report.untagged && 'gcRun' in report.untagged);
    assert.equal(report.untagged.manifests, 0, 'what a tag pointed at within audit.timemachine stays (a restore can bring it back)');
    const third = seeded.find((entry) => entry.tag === 'third')!.manifest;
    await registry.request.get(`/v2/app/web/manifests/${third.digest}`).set('Accept', allManifestTypes).expect(200);
    const again = await retention(registry, false);
    assert.deepEqual(again.deleted, [], 'a second run finds nothing more');
  });

  it('a tag pushed again after the decision is not deleted by it', async () => {
    const manifest = (await seed(registry, 'app/web', [{ tag: 'racing', pushedDaysAgo: 90, pulledDaysAgo: null }]))[0]!.manifest;
    const planned = (await retention(registry, true)).deleted.find((entry) => entry.tag === 'racing')!;
    await pushManifest(registry.request, 'app/web', 'racing', manifest); // the same digest, pushed now
    const deleted = await registry.registry.services.manifests.deleteTagIfUnchanged('app/web', 'racing', { digest: planned.digest, pushedAt: Date.parse(planned.pushedAt) }, { actor: 'retention.policies[0]', authMethod: 'system', address: null, userAgent: null, requestId: null });
    assert.equal(deleted, false);
    assert.ok((await tagList(registry, 'app/web')).includes('racing'));
  });

  it('refuses a bad dryrun with 400 naming it', async () => {
    assert.equal(envelopeCode(await registry.request.post('/api/v1/retention?dryrun=maybe').expect(400)), 'PARAMETER_INVALID');
  });
});

describe('retention with untagged: delete and no time machine', () => {
  it('the manifests the deleted tags pointed at are collected with the bytes only they named', async () => {
    const registry = await createTestRegistry({ retention: { policies: [{ repositories: ['app/**'], keep: { mostRecent: 1 }, untagged: 'delete' }] }, audit: { timeMachineMs: 0 }, gc: { graceMs: 0, untagged: false } });
    try {
      const [newest, old] = await seed(registry, 'app/api', [
        { tag: 'new', pushedDaysAgo: 1, pulledDaysAgo: null },
        { tag: 'old', pushedDaysAgo: 10, pulledDaysAgo: null },
      ]);
      // Untagged too, but in a repository no policy names: only the global untagged collection may take it.
      const untaggedElsewhere = imageManifest();
      await pushManifest(registry.request, 'lib/api', untaggedElsewhere.digest, untaggedElsewhere);
      const report = await retention(registry, false);
      assert.deepEqual(report.deleted.map((entry) => entry.tag), ['old']);
      assert.ok(report.untagged && 'manifests' in report.untagged);
      assert.equal(report.untagged.manifests, 1);
      await registry.request.get(`/v2/app/api/manifests/${old!.manifest.digest}`).set('Accept', allManifestTypes).expect(404);
      await registry.request.get(`/v2/app/api/manifests/${newest!.manifest.digest}`).set('Accept', allManifestTypes).expect(200);
      await registry.request.get(`/v2/app/api/blobs/${old!.manifest.blobs[1]!.digest}`).expect(404);
      await registry.request.get(`/v2/lib/api/manifests/${untaggedElsewhere.digest}`).set('Accept', allManifestTypes).expect(200);
      const collected = (await registry.request.get('/api/v1/audit/events?action=collected').expect(200)).body.events as Array<{ from: string }>;
      assert.deepEqual(collected.map((event) => event.from), [old!.manifest.digest]);
    } finally {
      await registry.close();
    }
  });
});
