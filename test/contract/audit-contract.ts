import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AuditService } from '../../src/audit/audit-service.js';
import { appendAuditEvents, listAuditEvents, noReceivers, pruneAuditEvents, readAuditChainHead, systemOrigin, type NewAuditEvent } from '../../src/metadata/audit.js';
import { engineOf, openMetadataDatabase, type MetadataDatabase, type MetadataDb } from '../../src/metadata/database.js';
import { insertManifest } from '../../src/metadata/manifests.js';
import { ensureRepository } from '../../src/metadata/repositories.js';
import { findTag, moveTag } from '../../src/metadata/tags.js';
import { manifestEvents, writeManifestRows } from '../../src/registry/manifest-rows.js';
import { parseManifest } from '../../src/oci/manifest.js';
import { imageManifest } from '../helpers/images.js';
import { testBlob } from '../helpers/blobs.js';
import type { DatabaseUnderTest } from './metadata-contract.js';
import { systemClock } from '../../src/clock.js';

const origin = (actor: string) => ({ actor, authMethod: 'basic', address: '192.0.2.1', userAgent: 'contract', requestId: `req-${actor}`, instance: 'contract' });

async function newManifest(db: MetadataDb, repositoryId: number): Promise<{ id: number; digest: string }> {
  const digest = testBlob(8).digest;
  const id = await insertManifest(db, { repositoryId, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: null, subjectDigest: null, payload: Buffer.from('{}'), blobDigests: [], childIds: [] }, Date.now());
  return { id, digest };
}

/** A tag move as the registry writes it: the tag row, then its event, in one transaction. */
async function moveWithEvent(db: MetadataDb, repository: string, repositoryId: number, tag: string, manifest: { id: number; digest: string }, actor: string): Promise<void> {
  await db.transaction().execute(async (transaction) => {
    const { previous } = await moveTag(transaction, repositoryId, tag, manifest.id, Date.now());
    if (previous === manifest.digest) return;
    const event: NewAuditEvent = { target: 'tag', repository, tag, upstream: null, action: previous === null ? 'created' : 'moved', from: previous, to: manifest.digest, mediaType: null };
    await appendAuditEvents(transaction, [event], origin(actor), Date.now(), noReceivers);
  });
}

/** The audit log on every engine: events in the tag's transaction, one linear chain, and verification. */
export function auditContract(name: string, make: () => Promise<DatabaseUnderTest>, options: { skip?: string } = {}): void {
  describe(`audit log contract: ${name}`, { skip: options.skip }, () => {
    let subject: DatabaseUnderTest;
    let database: MetadataDatabase;
    let audit: AuditService;
    before(async () => {
      subject = await make();
      database = await openMetadataDatabase(subject.url);
      audit = new AuditService(database.db, null, systemClock);
    });
    after(async () => {
      await database?.close();
      await subject?.cleanup();
    });

    it('writes a tag change and its event in one transaction: a change that fails leaves neither', async () => {
      const image = imageManifest();
      const manifest = parseManifest(image.bytes, image.mediaType);
      const record = { repository: 'audit/fail', digest: image.digest, payload: image.bytes, manifest, blobDigests: image.blobs.map((blob) => blob.digest), childIds: [], tags: ['prod'] };
      const headBefore = await readAuditChainHead(database.db);
      // Its blobs were never recorded: the manifest's blob rows fail their foreign keys.
      await assert.rejects(
        database.db.transaction().execute(async (transaction) => {
          const written = await writeManifestRows(transaction, record, Date.now());
          await appendAuditEvents(transaction, manifestEvents(record, written, { recordUnchanged: false, recordPush: false }), origin('alice'), Date.now(), noReceivers);
        }),
      );
      assert.deepEqual(await readAuditChainHead(database.db), headBefore, 'the chain did not move');
      assert.deepEqual(await listAuditEvents(database.db, { repository: 'audit/fail' }, 10), []);

      // A change whose transaction fails after its event was written: both are rolled back.
      const repository = await ensureRepository(database.db, 'audit/rollback', Date.now());
      const first = await newManifest(database.db, repository.id);
      await assert.rejects(
        database.db.transaction().execute(async (transaction) => {
          await moveTag(transaction, repository.id, 'prod', first.id, Date.now());
          await appendAuditEvents(transaction, [{ target: 'tag', repository: 'audit/rollback', tag: 'prod', upstream: null, action: 'created', from: null, to: first.digest, mediaType: null }], origin('alice'), Date.now(), noReceivers);
          throw new Error('the storage link could not be written');
        }),
        /storage link/,
      );
      assert.equal(await findTag(database.db, repository.id, 'prod'), undefined);
      assert.deepEqual(await listAuditEvents(database.db, { repository: 'audit/rollback' }, 10), []);
      assert.deepEqual(await readAuditChainHead(database.db), headBefore);

      const succeeding = { ...record, repository: 'audit/ok', blobDigests: [] };
      await database.db.transaction().execute(async (transaction) => {
        const written = await writeManifestRows(transaction, succeeding, Date.now());
        await appendAuditEvents(transaction, manifestEvents(succeeding, written, { recordUnchanged: false, recordPush: false }), origin('alice'), Date.now(), noReceivers);
      });
      const [created] = await listAuditEvents(database.db, { repository: 'audit/ok' }, 10);
      assert.equal(created?.action, 'created');
      assert.equal(created?.to, image.digest);
      assert.equal(created?.actor, 'alice');
      assert.equal(created?.id, headBefore.lastId + 1);
      assert.ok((await audit.verify()).ok);
    });

    it('concurrent moves of one tag from two replicas: a linear chain whose order matches the tag', async () => {
      // PostgreSQL: two connection pools, as two replicas have. SQLite is one process's file: its
      // writers share one connection, whose transactions the driver queues.
      const replica = engineOf(database.db) === 'postgres' ? await openMetadataDatabase(subject.url) : null;
      try {
        const repository = await ensureRepository(database.db, 'audit/race', Date.now());
        const manifests = await Promise.all(Array.from({ length: 6 }, () => newManifest(database.db, repository.id)));
        const writers = [database.db, replica?.db ?? database.db];
        await Promise.all(
          Array.from({ length: 40 }, (_, index) => moveWithEvent(writers[index % 2]!, 'audit/race', repository.id, 'prod', manifests[index % manifests.length]!, index % 2 === 0 ? 'replica-a' : 'replica-b')),
        );
        const events = await listAuditEvents(database.db, { repository: 'audit/race', tag: 'prod' }, 100, 'asc');
        assert.ok(events.length >= 2);
        assert.equal(events[0]!.action, 'created');
        assert.equal(events.filter((event) => event.action === 'created').length, 1, 'one writer created the tag; the other saw it and moved it');
        for (let index = 1; index < events.length; index++) {
          assert.equal(events[index]!.from, events[index - 1]!.to, `event ${events[index]!.id} moves from where event ${events[index - 1]!.id} left the tag`);
          assert.equal(events[index]!.id, events[index - 1]!.id + 1, 'no other event came between (ids follow commit order)');
        }
        const tag = await findTag(database.db, repository.id, 'prod');
        assert.equal(manifests.find((manifest) => manifest.id === tag?.manifestId)?.digest, events.at(-1)!.to, 'the last event is where the tag is');
        const verified = await audit.verify();
        assert.ok(verified.ok, JSON.stringify(verified.problem));
      } finally {
        await replica?.close();
      }
    });

    it('verification names the first event altered, removed or inserted by hand', async () => {
      const repository = await ensureRepository(database.db, 'audit/tamper', Date.now());
      for (let index = 0; index < 5; index++) await moveWithEvent(database.db, 'audit/tamper', repository.id, 'prod', await newManifest(database.db, repository.id), 'alice');
      const events = await listAuditEvents(database.db, { repository: 'audit/tamper' }, 10, 'asc');
      const [, second, third] = events;
      assert.ok(second && third);
      const head = await readAuditChainHead(database.db);

      await database.db.updateTable('audit_events').set({ actor: 'mallory' }).where('id', '=', second.id).execute();
      let verified = await audit.verify();
      assert.deepEqual([verified.ok, verified.problem?.kind, verified.problem?.event], [false, 'altered', second.id], JSON.stringify(verified.problem));
      await database.db.updateTable('audit_events').set({ actor: 'alice' }).where('id', '=', second.id).execute();
      assert.ok((await audit.verify()).ok, 'put back as it was, it verifies again');

      // Altered with its hash recomputed: the next event's link gives it away.
      const rehashed = (await import('../../src/metadata/audit-hash.js')).chainHash(second.prevHash, { ...second, to: third.to });
      await database.db.updateTable('audit_events').set({ to_digest: third.to, hash: rehashed }).where('id', '=', second.id).execute();
      verified = await audit.verify();
      assert.deepEqual([verified.problem?.kind, verified.problem?.event], ['altered', second.id], JSON.stringify(verified.problem));
      await database.db.updateTable('audit_events').set({ to_digest: second.to, hash: second.hash }).where('id', '=', second.id).execute();

      const row = await database.db.selectFrom('audit_events').selectAll().where('id', '=', third.id).executeTakeFirstOrThrow();
      await database.db.deleteFrom('audit_events').where('id', '=', third.id).execute();
      verified = await audit.verify();
      assert.deepEqual([verified.problem?.kind, verified.problem?.event], ['removed', third.id], verified.problem?.message);
      await database.db.insertInto('audit_events').values(row).execute();

      const last = await database.db.selectFrom('audit_events').selectAll().where('id', '=', head.lastId).executeTakeFirstOrThrow();
      await database.db.deleteFrom('audit_events').where('id', '=', head.lastId).execute();
      verified = await audit.verify();
      assert.deepEqual([verified.problem?.kind, verified.problem?.event], ['removed', head.lastId], 'the newest event removed: the head remembers it');
      await database.db.insertInto('audit_events').values(last).execute();

      await database.db.insertInto('audit_events').values({ ...last, id: head.lastId + 1, prev_hash: last.hash }).execute();
      verified = await audit.verify();
      assert.deepEqual([verified.problem?.kind, verified.problem?.event], ['inserted', head.lastId + 1]);
      await database.db.deleteFrom('audit_events').where('id', '=', head.lastId + 1).execute();
      assert.ok((await audit.verify()).ok);
    });

    it('pruning cuts the chain where it says, and what is left verifies', async () => {
      const repository = await ensureRepository(database.db, 'audit/prune', Date.now());
      await moveWithEvent(database.db, 'audit/prune', repository.id, 'old', await newManifest(database.db, repository.id), 'alice');
      const head = await readAuditChainHead(database.db);
      const pruned = await pruneAuditEvents(database.db, Date.now() + 1, 1000, Date.now());
      assert.equal(pruned, head.lastId, 'every event was older than the cut');
      const afterCut = await readAuditChainHead(database.db);
      assert.equal(afterCut.cutId, head.lastId);
      assert.equal(afterCut.cutHash, head.lastHash);
      await moveWithEvent(database.db, 'audit/prune', repository.id, 'new', await newManifest(database.db, repository.id), 'alice');
      const verified = await audit.verify();
      assert.ok(verified.ok, JSON.stringify(verified.problem));
      assert.equal(verified.events, 1);
      assert.deepEqual(verified.cut?.id, head.lastId);
      await appendAuditEvents(database.db, [{ target: 'tag', repository: 'audit/prune', tag: 'x', upstream: null, action: 'created', from: null, to: 'sha256:00', mediaType: null }], systemOrigin('test'), Date.now(), noReceivers);
      assert.ok((await audit.verify()).ok);
    });
  });
}
