import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pino from 'pino';
import { GarbageCollector } from '../../src/gc/collector.js';
import { noReceivers } from '../../src/metadata/audit.js';
import { openMetadataDatabase } from '../../src/metadata/database.js';
import { rebuildMetadata } from '../../src/registry/rebuild.js';
import { getSmallObject } from '../../src/storage/small-objects.js';
import { storagePaths } from '../../src/storage/paths.js';
import { parseDigest } from '../../src/oci/digest.js';
import { allManifestTypes, imageManifest, pushManifest } from '../helpers/images.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

/**
 * A user's delete removes rows first and storage links second (issue: a delete that removed the tag's
 * link inside its transaction lost the tag to the next `metadata rebuild` when the commit failed).
 */
describe('deletes: rows first, storage links after the commit', () => {
  let registry: TestRegistry;
  const tagLink = (repository: string, tag: string) => storagePaths.repositoryTag(repository, tag);
  const manifestLink = (repository: string, digest: string) => storagePaths.repositoryManifest(repository, parseDigest(digest));
  const pending = async () => (await registry.metadata.db.selectFrom('gc_pending').select('key').execute()).map((row) => row.key);

  before(async () => {
    registry = await createTestRegistry({ deleteEnabled: true });
  });
  after(async () => {
    await registry.close();
  });

  it('a delete whose commit fails leaves the tag served and its link in storage: a rebuild from storage still finds it', async () => {
    const tagged = imageManifest();
    const byDigest = imageManifest();
    await pushManifest(registry.request, 'team/app', 'doomed', tagged);
    await pushManifest(registry.request, 'team/app', 'stable', byDigest);
    const stored = await registry.storedFiles();
    for (const link of [tagLink('team/app', 'doomed'), tagLink('team/app', 'stable'), manifestLink('team/app', byDigest.digest)]) {
      assert.ok(stored.includes(link), `${link} is written by the push (the layout this test reads)`);
    }

    // The transaction fails at its last write (the audit event), as a full disk or a lost connection would.
    await sql`create trigger refuse_deletes before insert on audit_events when new.action = 'deleted' begin select raise(abort, 'the disk is full'); end`.execute(registry.metadata.db);
    try {
      const byTag = await registry.request.delete('/v2/team/app/manifests/doomed');
      assert.ok(byTag.status >= 500, `the failed delete by tag is an error (${byTag.status})`);
      const whole = await registry.request.delete(`/v2/team/app/manifests/${byDigest.digest}`);
      assert.ok(whole.status >= 500, `the failed delete by digest is an error (${whole.status})`);
    } finally {
      await sql`drop trigger refuse_deletes`.execute(registry.metadata.db);
    }

    await registry.request.get('/v2/team/app/manifests/doomed').set('Accept', allManifestTypes).expect(200);
    await registry.request.get('/v2/team/app/manifests/stable').set('Accept', allManifestTypes).expect(200);
    const after = await registry.storedFiles();
    for (const link of [tagLink('team/app', 'doomed'), tagLink('team/app', 'stable'), manifestLink('team/app', byDigest.digest)]) {
      assert.ok(after.includes(link), `${link} is still in storage`);
    }
    assert.deepEqual(await pending(), [], 'a rolled-back delete leaves no removal pending');

    const fresh = await openMetadataDatabase(`sqlite:${path.join(registry.root, 'rebuilt.db')}`);
    try {
      const summary = await rebuildMetadata({ storage: registry.storage, metadata: fresh.db, clock: registry.clock });
      assert.deepEqual(summary.skipped, []);
      const tags = await fresh.db.selectFrom('tags').innerJoin('manifests', 'manifests.id', 'tags.manifest_id').select(['tags.name', 'manifests.digest']).orderBy('tags.name').execute();
      assert.deepEqual(tags.map((row) => [row.name, row.digest]), [['doomed', tagged.digest], ['stable', byDigest.digest]]);
    } finally {
      await fresh.close();
    }

    // Once the commit succeeds, the links go after it, and nothing stays pending.
    await registry.request.delete('/v2/team/app/manifests/doomed').expect(202);
    await registry.request.delete(`/v2/team/app/manifests/${byDigest.digest}`).expect(202);
    const gone = await registry.storedFiles();
    for (const link of [tagLink('team/app', 'doomed'), tagLink('team/app', 'stable'), manifestLink('team/app', byDigest.digest)]) {
      assert.ok(!gone.includes(link), `${link} is removed after the commit`);
    }
    assert.deepEqual(await pending(), []);
  });

  it('a removal left pending (the process stopped after the commit) is finished by garbage collection, unless a push wrote the tag again', async () => {
    const first = imageManifest();
    const second = imageManifest();
    await pushManifest(registry.request, 'team/crash', 'gone', first);
    await pushManifest(registry.request, 'team/crash', 'back', first);
    // What a delete's commit leaves when its process stops before removing the links: rows gone, removals pending.
    await registry.metadata.db.deleteFrom('tags').where('name', 'in', ['gone', 'back']).execute();
    await registry.metadata.db
      .insertInto('gc_pending')
      .values([tagLink('team/crash', 'gone'), tagLink('team/crash', 'back')].map((key) => ({ key, digest: null, created_at: registry.clock.now() })))
      .execute();
    // A client pushes `back` again before any collection: its link is written anew and the removal called off.
    await pushManifest(registry.request, 'team/crash', 'back', second);

    const silent = pino({ level: 'silent' });
    const report = await new GarbageCollector(registry.stores, silent, null, 0, noReceivers).run({ dryRun: false, untagged: false, graceMs: 3_600_000 });
    assert.equal(report.state, 'succeeded');
    const stored = await registry.storedFiles();
    assert.ok(!stored.includes(tagLink('team/crash', 'gone')), 'the deleted tag\'s link is removed');
    assert.ok(stored.includes(tagLink('team/crash', 'back')), 'the tag pushed again keeps its link');
    assert.equal((await getSmallObject(registry.storage, tagLink('team/crash', 'back'))).toString(), second.digest);
    assert.deepEqual(await pending(), []);
    await registry.request.get('/v2/team/crash/manifests/back').set('Accept', allManifestTypes).expect(200).expect('Docker-Content-Digest', second.digest);
  });
});
