import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { findBlob, findLinkedBlob, findLinkedBlobSizes, insertBlob, linkBlob, unlinkBlob } from '../../src/metadata/blobs.js';
import { engineOf, isUniqueViolation, openMetadataDatabase, type MetadataDatabase, type MetadataDb } from '../../src/metadata/database.js';
import { countProjectRepositories, deleteMember, deleteProject, findProject, insertProject, insertRobot, listMembers, listRobots, setMember, updateProject, updateRobot } from '../../src/metadata/projects.js';
import { bumpDirectoryVersion, deleteAccount, findAccount, insertAccount, listAccounts, readDirectoryVersion, updateAccount } from '../../src/metadata/accounts.js';
import {
  countManifests,
  deleteManifest,
  findManifest,
  findManifestByReference,
  findManifestIds,
  findParentDigests,
  findReferrers,
  insertManifest,
} from '../../src/metadata/manifests.js';
import { ensureRepository, findRepository, listRepositoriesWithManifests } from '../../src/metadata/repositories.js';
import {
  deleteMirrorReferrers,
  deleteMirrorTag,
  findMirrorBlob,
  findMirrorManifest,
  findMirrorReferrers,
  findMirrorTag,
  findUpstreamsCaching,
  importMirrorTag,
  insertMirrorManifest,
  listCachedManifests,
  listCachedTags,
  linkMirrorBlob,
  listMirrorTagHistory,
  setMirrorReferrers,
  setMirrorTag,
} from '../../src/metadata/mirror.js';
import {
  acquireGcLock,
  addPending,
  claimBlobWrite,
  currentGcHolder,
  deleteGarbageBlobs,
  deleteGarbageManifests,
  deletePending,
  findGarbageBlobs,
  findGarbageManifests,
  findUnrecordedDigests,
  finishPendingKey,
  isPendingDeletion,
  listPending,
  releaseBlobWrite,
  releaseGcLock,
  renewGcLock,
  takeBackPendingKey,
  touchBlob,
} from '../../src/metadata/gc.js';
import { deleteTag, findTag, listTags, moveTag } from '../../src/metadata/tags.js';
import { noReceivers, systemOrigin } from '../../src/metadata/audit.js';
import { advanceUpload, deleteUpload, findUpload, insertUploadWithinLimits } from '../../src/metadata/uploads.js';
import { testBlob } from '../helpers/blobs.js';

export interface DatabaseUnderTest {
  url: string;
  cleanup(): Promise<void>;
}

/** PostgreSQL: until another session of this database waits on a lock (the step a race test needs to have happened). */
async function waitForLockWait(db: MetadataDb): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const { rows } = await sql<{ waiting: number }>`select count(*)::int as waiting from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(db);
    if ((rows[0]?.waiting ?? 0) > 0) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('no session came to wait on the lock');
}

/** A digest of fresh random bytes: distinct for every call. */
const randomDigest = () => testBlob(8).digest;

/** The suite every metadata engine passes: the same queries, the same answers. */
export function metadataContract(name: string, make: () => Promise<DatabaseUnderTest>, options: { skip?: string } = {}): void {
  describe(`metadata contract: ${name}`, { skip: options.skip }, () => {
    let subject: DatabaseUnderTest;
    let database: MetadataDatabase;
    before(async () => {
      subject = await make();
      database = await openMetadataDatabase(subject.url);
    });
    after(async () => {
      await database?.close();
      await subject?.cleanup();
    });

    it('migrates once, however many openers race to do it', async () => {
      const openers = await Promise.all(Array.from({ length: 4 }, () => openMetadataDatabase(subject.url)));
      for (const opener of openers) await opener.close();
      const migrations = (await database.db
        .selectFrom('kysely_migration' as never)
        .select('name' as never)
        .orderBy('name' as never)
        .execute()) as Array<{ name: string }>;
      assert.deepEqual(migrations.map((row) => row.name), ['0001-initial', '0002-mirror', '0003-mirror-history-referrers', '0004-mirror-history-action', '0005-gc', '0006-mirror-eviction', '0007-audit', '0008-notifications', '0009-tag-changes', '0010-repository-pushes', '0011-upload-owners-readiness', '0012-accounts', '0013-projects', '0014-robots'], 'each migration recorded once');
    });

    it('creates a repository once under concurrent callers', async () => {
      const rows = await Promise.all(Array.from({ length: 10 }, () => ensureRepository(database.db, 'team/app', Date.now())));
      assert.equal(new Set(rows.map((row) => row.id)).size, 1);
      assert.equal((await findRepository(database.db, 'team/app'))?.id, rows[0]!.id);
      assert.equal(await findRepository(database.db, 'team/none'), undefined);
    });

    it('records blobs with sizes past 4 GiB and links them per repository', async () => {
      const repository = await ensureRepository(database.db, 'blobs/repo', Date.now());
      const big = { digest: randomDigest(), size: 5 * 1024 ** 3 + 7 };
      await insertBlob(database.db, big, Date.now());
      await insertBlob(database.db, { digest: big.digest, size: 1 }, Date.now());
      assert.deepEqual(await findBlob(database.db, big.digest), big, 'the first row stays, sizes come back as numbers');
      assert.equal(await findLinkedBlob(database.db, 'blobs/repo', big.digest), undefined);
      await linkBlob(database.db, repository.id, big.digest, Date.now());
      await linkBlob(database.db, repository.id, big.digest, Date.now());
      assert.deepEqual(await findLinkedBlob(database.db, 'blobs/repo', big.digest), big);
      assert.deepEqual([...(await findLinkedBlobSizes(database.db, repository.id, [big.digest, randomDigest()]))], [[big.digest, big.size]], "with the size, past 4 GiB");
      assert.equal(await unlinkBlob(database.db, repository.id, big.digest), true);
      assert.equal(await unlinkBlob(database.db, repository.id, big.digest), false);
    });

    it('keeps upload sessions and advances them only from the size they were at', async () => {
      const id = '6d1c2f0e-8a47-4b5e-9d1a-3f1e2c4b5a69';
      assert.deepEqual(await insertUploadWithinLimits(database.db, { id, repository: 'uploads/repo', owner: 'alice' }, { perRepository: 0, perOwner: 0 }, Date.now()), { refused: null });
      assert.equal((await findUpload(database.db, 'uploads/repo', id))?.size, 0);
      assert.equal(await findUpload(database.db, 'other/repo', id), undefined);
      assert.equal(await advanceUpload(database.db, id, 0, 6_000_000_000, '{"part":1}', Date.now()), true);
      assert.equal(await advanceUpload(database.db, id, 0, 10, null, Date.now()), false, 'a writer that started from 0 lost the race');
      const upload = await findUpload(database.db, 'uploads/repo', id);
      assert.equal(upload?.size, 6_000_000_000);
      assert.equal(upload?.storageState, '{"part":1}');
      assert.equal(await deleteUpload(database.db, id), true);
      assert.equal(await findUpload(database.db, 'uploads/repo', id), undefined);
    });

    it('opens upload sessions up to the limits, exactly, however many clients start them at once', async () => {
      const limits = { perRepository: 5, perOwner: 7 };
      const start = (repository: string, owner: string, index: number) =>
        insertUploadWithinLimits(database.db, { id: `limits-${repository.replace('/', '-')}-${owner}-${index}`, repository, owner }, limits, Date.now());
      const first = await Promise.all(Array.from({ length: 20 }, (_, index) => start('limits/one', `robot-${index % 2}`, index)));
      assert.equal(first.filter((result) => result.refused === null).length, 5, 'five sessions in the repository, not one more');
      assert.equal(first.filter((result) => result.refused === 'repository').length, 15);
      const second = await Promise.all(Array.from({ length: 12 }, (_, index) => start(`limits/many-${index}`, 'carol', index)));
      assert.equal(second.filter((result) => result.refused === null).length, 7, 'seven for one owner across repositories');
      assert.ok(second.every((result) => result.refused === null || result.refused === 'owner'));
      const refusedRepositories = await database.db.selectFrom('repositories').select('name').where('name', 'like', 'limits/many-%').execute();
      assert.equal(refusedRepositories.length, 7, 'a refused start leaves no repository row behind');
      // Sessions untouched for over an hour do not count.
      await database.db.updateTable('uploads').set({ updated_at: Date.now() - 2 * 3_600_000 }).where('owner', '=', 'carol').execute();
      assert.equal((await start('limits/many-11', 'carol', 99)).refused, null);
    });

    it('stores manifests with their references, tags, referrers, and deletes them', async () => {
      const repository = await ensureRepository(database.db, 'manifests/repo', Date.now());
      const layer = randomDigest();
      await insertBlob(database.db, { digest: layer, size: 10 }, Date.now());
      const payload = Buffer.from('{"schemaVersion":2}\u0000\u00ff binary-safe');
      const child = await database.db.transaction().execute(async (transaction) =>
        insertManifest(transaction, {
          repositoryId: repository.id,
          digest: randomDigest(),
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactType: null,
          subjectDigest: null,
          payload,
          blobDigests: [layer, layer],
          childIds: [],
        }, Date.now()),
      );
      const childRow = await database.db.selectFrom('manifests').select('digest').where('id', '=', child).executeTakeFirstOrThrow();
      const parentDigest = randomDigest();
      const parent = await insertManifest(database.db, {
        repositoryId: repository.id,
        digest: parentDigest,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        artifactType: null,
        subjectDigest: null,
        payload: Buffer.from('{}'),
        blobDigests: [],
        childIds: [child],
      }, Date.now());
      assert.deepEqual(await findParentDigests(database.db, child), [parentDigest]);
      const stored = await findManifest(database.db, repository.id, childRow.digest);
      assert.ok(stored && Buffer.from(stored.payload).equals(payload), 'payload bytes round-trip');
      assert.equal(stored?.size, payload.length);
      assert.deepEqual([...(await findManifestIds(database.db, repository.id, [childRow.digest, randomDigest()])).keys()], [childRow.digest]);

      await moveTag(database.db, repository.id, 'latest', child, Date.now());
      await moveTag(database.db, repository.id, 'latest', parent, Date.now());
      assert.deepEqual(await findTag(database.db, repository.id, 'latest'), { manifestId: parent });
      assert.equal((await findManifestByReference(database.db, 'manifests/repo', { tag: 'latest' }))?.digest, parentDigest);
      assert.equal((await findManifestByReference(database.db, 'manifests/repo', { digest: childRow.digest }))?.id, child);
      assert.equal(await findManifestByReference(database.db, 'other/repo', { tag: 'latest' }), undefined);

      const subject = childRow.digest;
      for (const artifactType of ['application/vnd.example.sig', 'application/spdx+json']) {
        await insertManifest(database.db, {
          repositoryId: repository.id,
          digest: randomDigest(),
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactType,
          subjectDigest: subject,
          payload: Buffer.from('{"annotations":{}}'),
          blobDigests: [],
          childIds: [],
        }, Date.now());
      }
      assert.equal((await findReferrers(database.db, repository.id, subject)).length, 2);
      assert.deepEqual((await findReferrers(database.db, repository.id, subject, 'application/spdx+json')).map((row) => row.artifactType), ['application/spdx+json']);
      assert.equal(await countManifests(database.db, repository.id), 4);

      await moveTag(database.db, repository.id, 'stable', parent, Date.now());
      assert.deepEqual((await deleteManifest(database.db, parent)).sort(), ['latest', 'stable']);
      assert.deepEqual(await findParentDigests(database.db, child), []);
      assert.equal(await findTag(database.db, repository.id, 'latest'), undefined);
    });

    it('a link removal a delete left pending and a writer of the same key are ordered: the writer waits for the removal, or the removal finds nothing', async () => {
      // Removal first: it holds its claim of the key while it removes the object; the writer's take-back waits for it.
      const key = `repositories/contract/_tags/${randomDigest().slice(7, 19)}`;
      await addPending(database.db, [{ key, digest: null }], Date.now());
      let entered!: () => void;
      const removing = new Promise<void>((resolve) => (entered = resolve));
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let removed = false;
      const removal = finishPendingKey(database.db, key, async () => {
        entered();
        await held;
        removed = true;
      });
      await removing;
      const writer = database.db.transaction().execute(async (transaction) => {
        await takeBackPendingKey(transaction, key);
        // Here the writer writes the link again: the removal must be over.
        return removed;
      });
      if (engineOf(database.db) === 'postgres') await waitForLockWait(database.db);
      release();
      assert.equal(await removal, true, 'the removal found its row and removed the object');
      assert.equal(await writer, true, 'the writer went on only once the removal had finished');

      // Writer first: the removal, started while the writer's transaction is open, finds nothing to remove.
      await addPending(database.db, [{ key, digest: null }], Date.now());
      let writing!: () => void;
      const writerIn = new Promise<void>((resolve) => (writing = resolve));
      let commit!: () => void;
      const committing = new Promise<void>((resolve) => (commit = resolve));
      const second = database.db.transaction().execute(async (transaction) => {
        await takeBackPendingKey(transaction, key);
        writing();
        await committing;
      });
      await writerIn;
      let removedAgain = false;
      const late = finishPendingKey(database.db, key, async () => {
        removedAgain = true;
      });
      if (engineOf(database.db) === 'postgres') await waitForLockWait(database.db);
      commit();
      await second;
      assert.equal(await late, false);
      assert.equal(removedAgain, false, 'the link the writer wrote stays');
      assert.deepEqual(await listPending(database.db, 10), []);
    });

    it('keeps accounts: a duplicate name refused, changes counted in the directory version', async () => {
      const name = `account-${randomDigest().slice(7, 15)}`;
      const version = await readDirectoryVersion(database.db);
      await database.db.transaction().execute(async (transaction) => {
        await insertAccount(transaction, { name, passwordHash: '$2b$04$hash', admin: false }, 1000);
        await bumpDirectoryVersion(transaction);
      });
      assert.equal(await readDirectoryVersion(database.db), version + 1);
      await assert.rejects(insertAccount(database.db, { name, passwordHash: '$2b$04$other', admin: true }, 2000), (error: unknown) => isUniqueViolation(error));
      assert.deepEqual(await findAccount(database.db, name), { name, passwordHash: '$2b$04$hash', admin: false, disabled: false, createdAt: 1000, updatedAt: 1000 });
      assert.equal(await updateAccount(database.db, name, { disabled: true, admin: true }, 3000), true);
      assert.deepEqual(await findAccount(database.db, name), { name, passwordHash: '$2b$04$hash', admin: true, disabled: true, createdAt: 1000, updatedAt: 3000 });
      assert.equal(await updateAccount(database.db, 'nobody-at-all', { disabled: true }, 3000), false);
      assert.ok((await listAccounts(database.db)).some((account) => account.name === name));
      assert.equal(await deleteAccount(database.db, name), true);
      assert.equal(await deleteAccount(database.db, name), false);
      assert.equal(await findAccount(database.db, name), undefined);
    });

    it('keeps projects and members; counts a project\'s repositories by their first component (library: names of one)', async () => {
      const suffix = randomDigest().slice(7, 13);
      const name = `p_${suffix}`;
      await insertProject(database.db, { name, public: false, quotaStorage: 1024 }, 1000);
      await assert.rejects(insertProject(database.db, { name, public: true, quotaStorage: null }, 2000), (error: unknown) => isUniqueViolation(error));
      assert.deepEqual(await findProject(database.db, name), { name, public: false, quotaStorage: 1024, createdAt: 1000, updatedAt: 1000 });
      await updateProject(database.db, name, { public: true, quotaStorage: null }, 3000);
      assert.deepEqual(await findProject(database.db, name), { name, public: true, quotaStorage: null, createdAt: 1000, updatedAt: 3000 });
      assert.equal(await setMember(database.db, { project: name, account: 'dana', role: 'guest' }, 4000), null);
      assert.equal(await setMember(database.db, { project: name, account: 'dana', role: 'developer' }, 5000), 'guest');
      assert.deepEqual((await listMembers(database.db)).filter((member) => member.project === name), [{ project: name, account: 'dana', role: 'developer' }]);
      for (const repository of [`${name}/app`, `${name}/team/tool`, `pX${suffix}/other`, `${name}x/near`]) await ensureRepository(database.db, repository, Date.now());
      assert.equal(await countProjectRepositories(database.db, name), 2, 'the _ of the name is taken literally, and a longer first component is another project');
      const libraryBefore = await countProjectRepositories(database.db, 'library');
      await ensureRepository(database.db, `alpine${suffix}`, Date.now());
      assert.equal(await countProjectRepositories(database.db, 'library'), libraryBefore + 1);
      assert.equal(await deleteMember(database.db, name, 'dana'), 'developer');
      assert.equal(await deleteMember(database.db, name, 'dana'), null);
      await setMember(database.db, { project: name, account: 'erin', role: 'admin' }, 6000);
      const robot = `robot$${name}+ci`;
      await insertRobot(database.db, { name: robot, project: name, secretHash: '$2b$04$hash', access: [{ repositories: ['app'], actions: ['pull'] }], expiresAt: 9000 }, 7000);
      await assert.rejects(insertRobot(database.db, { name: robot, project: name, secretHash: '$2b$04$other', access: [], expiresAt: null }, 7000), (error: unknown) => isUniqueViolation(error));
      await updateRobot(database.db, robot, { disabled: true, secretHash: '$2b$04$new' }, 8000);
      assert.deepEqual(await listRobots(database.db, name), [{ name: robot, project: name, secretHash: '$2b$04$new', access: [{ repositories: ['app'], actions: ['pull'] }], expiresAt: 9000, disabled: true, createdAt: 7000, updatedAt: 8000 }]);
      await assert.rejects(insertRobot(database.db, { name: 'robot$nowhere+x', project: `nowhere-${suffix}`, secretHash: '$2b$04$x', access: [], expiresAt: null }, 7000), 'a robot needs its project');
      await deleteProject(database.db, name);
      assert.deepEqual(await listRobots(database.db, name), [], 'a robot goes with its project');
      assert.equal(await findProject(database.db, name), undefined);
      assert.deepEqual((await listMembers(database.db)).filter((member) => member.project === name), []);
    });

    it('lists tags and repositories in byte order, page by page', async () => {
      const repository = await ensureRepository(database.db, 'order/repo', Date.now());
      const manifest = await insertManifest(database.db, {
        repositoryId: repository.id,
        digest: randomDigest(),
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: null,
        subjectDigest: null,
        payload: Buffer.from('{}'),
        blobDigests: [],
        childIds: [],
      }, Date.now());
      const tags = ['b', 'B', '_x', 'a', 'A', '0', 'a.b', 'a-b', 'Z'];
      await Promise.all(tags.map((tag) => moveTag(database.db, repository.id, tag, manifest, Date.now())));
      const byteOrder = [...tags].sort((x, y) => (Buffer.compare(Buffer.from(x), Buffer.from(y))));
      assert.deepEqual(await listTags(database.db, repository.id, 100), byteOrder);
      assert.deepEqual(await listTags(database.db, repository.id, 3, byteOrder[2]), byteOrder.slice(3, 6));
      const manifestDigest = (await findManifestByReference(database.db, 'order/repo', { tag: 'a' }))?.digest;
      assert.equal(await deleteTag(database.db, repository.id, 'a'), manifestDigest, 'a delete answers the digest the tag had');
      assert.equal(await deleteTag(database.db, repository.id, 'a'), undefined);

      await ensureRepository(database.db, 'order/empty', Date.now());
      const listed = await listRepositoriesWithManifests(database.db, 100);
      assert.ok(listed.includes('order/repo') && listed.includes('manifests/repo'));
      assert.ok(!listed.includes('order/empty') && !listed.includes('team/app'), 'repositories without manifests are not listed');
      assert.deepEqual(listed, [...listed].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
      assert.deepEqual(await listRepositoriesWithManifests(database.db, 1, 'manifests/repo'), ['order/repo']);
    });

    it('keeps the mirror cache: manifests and blobs per upstream repository, tags with when they were checked', async () => {
      const from = { upstream: 'docker.io', repository: 'library/alpine' };
      const other = { upstream: 'ghcr.io', repository: 'library/alpine' };
      const manifest = { digest: randomDigest(), mediaType: 'application/vnd.oci.image.index.v1+json', size: 2, payload: Buffer.from('{}') };
      await insertMirrorManifest(database.db, from, manifest, Date.now());
      await insertMirrorManifest(database.db, from, manifest, Date.now());
      const found = await findMirrorManifest(database.db, from, manifest.digest);
      assert.deepEqual({ ...found, payload: Buffer.from(found!.payload) }, manifest);
      assert.equal(await findMirrorManifest(database.db, other, manifest.digest), undefined);

      assert.equal(await setMirrorTag(database.db, from, 'latest', manifest.digest, 1000, noReceivers), undefined);
      assert.equal(await setMirrorTag(database.db, from, 'latest', manifest.digest, 2000, noReceivers), manifest.digest);
      assert.deepEqual(await findMirrorTag(database.db, from, 'latest'), { digest: manifest.digest, checkedAt: 2000 });
      const moved = randomDigest();
      assert.equal(await setMirrorTag(database.db, from, 'latest', moved, 3000, noReceivers), manifest.digest);
      assert.deepEqual(await findMirrorTag(database.db, from, 'latest'), { digest: moved, checkedAt: 3000 });
      await deleteMirrorTag(database.db, from, 'latest', 4000, noReceivers);
      assert.equal(await findMirrorTag(database.db, from, 'latest'), undefined);
      await deleteMirrorTag(database.db, from, 'latest', 5000, noReceivers);
      const history = await listMirrorTagHistory(database.db, { ...from, tag: 'latest', limit: 10 });
      assert.deepEqual(
        history.map((event) => [event.upstream, event.repository, event.tag, event.from, event.to, event.at, event.action]),
        [
          ['docker.io', 'library/alpine', 'latest', moved, null, 4000, 'gone'],
          ['docker.io', 'library/alpine', 'latest', manifest.digest, moved, 3000, 'moved'],
          ['docker.io', 'library/alpine', 'latest', null, manifest.digest, 1000, 'seen'],
        ],
        'first seen, moved, gone; newest first; an unchanged check and a second delete add nothing',
      );
      assert.deepEqual(
        (await listMirrorTagHistory(database.db, { ...from, before: history[0]!.id, limit: 1 })).map((event) => event.at),
        [3000],
        'the next page starts below the last id shown',
      );
      assert.deepEqual(await listMirrorTagHistory(database.db, { ...other, limit: 10 }), []);

      const subject = randomDigest();
      const descriptors = [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: randomDigest(), size: 512, artifactType: 'application/vnd.example.signature' }];
      assert.equal(await findMirrorReferrers(database.db, from, subject), undefined);
      await setMirrorReferrers(database.db, from, subject, [], 1000);
      await setMirrorReferrers(database.db, from, subject, descriptors, 2000);
      assert.deepEqual(await findMirrorReferrers(database.db, from, subject), { descriptors, checkedAt: 2000 });
      assert.equal(await findMirrorReferrers(database.db, other, subject), undefined);
      await deleteMirrorReferrers(database.db, from, subject);
      assert.equal(await findMirrorReferrers(database.db, from, subject), undefined);

      const blob = randomDigest();
      await insertBlob(database.db, { digest: blob, size: 4096 }, Date.now());
      await linkMirrorBlob(database.db, from, blob, Date.now());
      await linkMirrorBlob(database.db, from, blob, Date.now());
      assert.deepEqual(await findMirrorBlob(database.db, from, blob), { size: 4096 });
      assert.equal(await findMirrorBlob(database.db, other, blob), undefined);
      await assert.rejects(linkMirrorBlob(database.db, from, randomDigest(), Date.now()), 'a mirror blob needs its blob row');
    });

    it('imports mirrored tags as seen elsewhere: never back to an older sighting, with imported events; lists what an upstream\'s cache holds', async () => {
      const from = { upstream: 'offline.example', repository: 'library/busybox' };
      const [first, second, third] = [randomDigest(), randomDigest(), randomDigest()];
      const manifest = (digest: string) => ({ digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 2, payload: Buffer.from('{}') });
      for (const digest of [first, second, third]) await insertMirrorManifest(database.db, from, manifest(digest), Date.now());
      assert.equal(await importMirrorTag(database.db, from, '1.36', first, 1000, systemOrigin('import'), 50_000, noReceivers), 'created');
      assert.equal(await importMirrorTag(database.db, from, '1.36', first, 1500, systemOrigin('import'), 51_000, noReceivers), 'unchanged');
      assert.deepEqual(await findMirrorTag(database.db, from, '1.36'), { digest: first, checkedAt: 1500 }, 'a later sighting of the same digest refreshes the check');
      assert.equal(await importMirrorTag(database.db, from, '1.36', second, 3000, systemOrigin('import'), 52_000, noReceivers), 'moved');
      assert.equal(await importMirrorTag(database.db, from, '1.36', third, 2000, systemOrigin('import'), 53_000, noReceivers), 'kept-newer', 'seen at 2000, the cache saw 3000');
      assert.equal(await importMirrorTag(database.db, from, '1.36', second, 2500, systemOrigin('import'), 54_000, noReceivers), 'unchanged');
      assert.deepEqual(await findMirrorTag(database.db, from, '1.36'), { digest: second, checkedAt: 3000 }, 'an older sighting does not turn the check back');
      const history = await listMirrorTagHistory(database.db, { ...from, limit: 10 });
      assert.deepEqual(
        history.map((event) => [event.from, event.to, event.at, event.action]),
        [
          [first, second, 52_000, 'imported'],
          [null, first, 50_000, 'imported'],
        ],
      );
      await setMirrorTag(database.db, from, 'latest', third, 4000, noReceivers);
      assert.deepEqual(
        (await listCachedTags(database.db, from.upstream)).map((row) => [row.repository, row.tag, row.digest, row.checkedAt]),
        [
          ['library/busybox', '1.36', second, 3000],
          ['library/busybox', 'latest', third, 4000],
        ],
      );
      assert.deepEqual((await listCachedManifests(database.db, from.upstream)).map((row) => row.digest).sort(), [first, second, third].sort());
      assert.deepEqual(await findUpstreamsCaching(database.db, 'library/busybox'), ['offline.example']);
      assert.deepEqual(await findUpstreamsCaching(database.db, 'library/nothing'), []);
    });

    it('asking for the collection lease while another run takes and releases it again and again always answers a holder', async () => {
      const other = await openMetadataDatabase(subject.url);
      let churning = true;
      let churned = 0;
      const churn = (async () => {
        while (churning) {
          if ((await acquireGcLock(other.db, 'churn:1:x', 60_000, Date.now())) === 'churn:1:x') {
            churned++;
            await releaseGcLock(other.db, 'churn:1:x');
          }
        }
      })();
      try {
        for (let attempt = 0; attempt < 300; attempt++) {
          const holder = await acquireGcLock(database.db, 'contract:3:c', 60_000, Date.now());
          assert.ok(holder === 'churn:1:x' || holder === 'contract:3:c', `answered ${holder}`);
          if (holder === 'contract:3:c') await releaseGcLock(database.db, 'contract:3:c');
        }
      } finally {
        churning = false;
        await churn;
        await other.close();
      }
      assert.ok(churned > 0, 'the other run took the lease too');
    });

    it('garbage collection: marks over indexes and referrers, re-checks at delete time, claims, touches and the lease', async () => {
      const now = Date.now();
      const old = now - 2 * 3_600_000;
      const cutoff = now - 3_600_000;
      const lease = { holder: 'contract:1:a', leaseMs: 60_000 };
      assert.equal(await acquireGcLock(database.db, lease.holder, lease.leaseMs, Date.now()), lease.holder);
      assert.equal(await acquireGcLock(database.db, 'contract:2:b', 60_000, Date.now()), lease.holder, 'a second run does not get the lease');
      assert.equal(await renewGcLock(database.db, 'contract:2:b', 60_000, Date.now()), false);
      assert.equal(await renewGcLock(database.db, lease.holder, 60_000, Date.now()), true);

      const repository = await ensureRepository(database.db, 'gc/repo', Date.now());
      const blob = async (at = old) => {
        const digest = randomDigest();
        await insertBlob(database.db, { digest, size: 100 }, at);
        return digest;
      };
      const manifest = async (options: { blobs?: string[]; children?: number[]; subject?: string } = {}) => {
        const digest = await blob();
        const id = await insertManifest(
          database.db,
          {
            repositoryId: repository.id,
            digest,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            artifactType: null,
            subjectDigest: options.subject ?? null,
            payload: Buffer.from('{}'),
            blobDigests: options.blobs ?? [],
            childIds: options.children ?? [],
          },
          old,
        );
        return { id, digest };
      };
      const liveLayer = await blob();
      const image = await manifest({ blobs: [liveLayer] });
      const innerIndex = await manifest({ children: [image.id] });
      const outerIndex = await manifest({ children: [innerIndex.id] });
      await moveTag(database.db, repository.id, 'latest', outerIndex.id, Date.now());
      const referrer = await manifest({ subject: image.digest });
      await manifest({ subject: referrer.digest }); // a referrer of the referrer: kept too
      const garbageLayer = await blob();
      const untagged = await manifest({ blobs: [garbageLayer] });
      const untaggedReferrer = await manifest({ subject: untagged.digest });
      const retagged = await manifest();

      const garbage = (await findGarbageManifests(database.db, cutoff, cutoff)).map((row) => row.digest);
      assert.deepEqual(garbage.sort(), [untagged.digest, untaggedReferrer.digest, retagged.digest].sort(), 'only untagged manifests nothing keeps (younger rows of other tests stay out)');
      const blobsIfUntagged = (await findGarbageBlobs(database.db, cutoff, true)).map((row) => row.digest);
      assert.ok(blobsIfUntagged.includes(garbageLayer) && !blobsIfUntagged.includes(liveLayer));
      assert.ok(!(await findGarbageBlobs(database.db, cutoff, false)).some((row) => row.digest === garbageLayer), 'without untagged, its manifest keeps the layer');

      // A tag put on a candidate after the mark: the deleting transaction keeps it.
      await moveTag(database.db, repository.id, 'late', retagged.id, Date.now());
      const candidates = (await findGarbageManifests(database.db, cutoff - 1, cutoff)).filter((row) => garbage.includes(row.digest));
      const refs = [...candidates, { id: retagged.id, repository: 'gc/repo', digest: retagged.digest }];
      const deleted = await deleteGarbageManifests(database.db, refs, cutoff, cutoff, lease, { origin: systemOrigin('gc', lease.holder), detail: null, outbox: noReceivers }, (row) => `links/${row.digest}`, Date.now());
      assert.deepEqual(deleted.map((row) => row.digest).sort(), [untagged.digest, untaggedReferrer.digest].sort());
      assert.ok((await findManifest(database.db, repository.id, retagged.digest)) !== undefined);
      assert.deepEqual((await listPending(database.db, 100)).map((entry) => entry.key).sort(), [`links/${untagged.digest}`, `links/${untaggedReferrer.digest}`].sort());
      await deletePending(database.db, [`links/${untagged.digest}`, `links/${untaggedReferrer.digest}`]);

      // Blobs: a use, a write in progress, a young link and a mirror entry each keep one.
      const touched = await blob();
      const writing = await blob();
      const linkedLate = await blob();
      const mirrored = await blob();
      const plain = await blob();
      await touchBlob(database.db, touched, Date.now());
      assert.equal(await claimBlobWrite(database.db, 'write-1', writing, Date.now()), 'claimed');
      await linkBlob(database.db, repository.id, linkedLate, Date.now());
      await linkMirrorBlob(database.db, { upstream: 'docker.io', repository: 'library/gc' }, mirrored, Date.now());
      const bytesKey = (digest: string) => `bytes/${digest}`;
      const removed = await deleteGarbageBlobs(database.db, [touched, writing, linkedLate, mirrored, plain, garbageLayer, liveLayer], cutoff, lease, bytesKey, Date.now());
      assert.deepEqual(removed.map((row) => row.digest).sort(), [plain, garbageLayer].sort());
      assert.equal(await findBlob(database.db, plain), undefined);
      assert.ok(await isPendingDeletion(database.db, plain), 'its bytes are pending deletion');
      assert.equal(await claimBlobWrite(database.db, 'write-2', plain, Date.now()), 'wait', 'a writer of it waits while the run holds the lease');
      await releaseBlobWrite(database.db, 'write-1');
      assert.deepEqual((await deleteGarbageBlobs(database.db, [writing], cutoff, lease, bytesKey, Date.now())).map((row) => row.digest), [writing], 'once the write ended');
      await releaseGcLock(database.db, lease.holder);
      assert.equal(await claimBlobWrite(database.db, 'write-3', plain, Date.now()), 'claimed', 'with no run alive, a stale pending deletion is forgotten');
      assert.equal(await isPendingDeletion(database.db, plain), false);
      await releaseBlobWrite(database.db, 'write-3');
      assert.deepEqual(await findUnrecordedDigests(database.db, [plain, touched]), [plain], 'bytes of a removed row are unrecorded');

      // The lease: free after release, and a dead holder can be displaced at once.
      assert.equal(await acquireGcLock(database.db, 'contract:3:c', 60_000, Date.now()), 'contract:3:c');
      assert.equal(await acquireGcLock(database.db, 'contract:4:d', 60_000, Date.now(), 'contract:3:c'), 'contract:4:d');
      assert.equal(await acquireGcLock(database.db, 'contract:5:e', 60_000, Date.now() + 120_000), 'contract:5:e', 'an expired lease is free');
      await releaseGcLock(database.db, 'contract:5:e');
      assert.equal(await currentGcHolder(database.db, Date.now()), undefined);
      const pendingLeft = await listPending(database.db, 100);
      await deletePending(database.db, pendingLeft.map((entry) => entry.key));
    });
  });
}
