import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { GarbageCollector, type GcReport } from '../../src/gc/collector.js';
import { openMetadataDatabase } from '../../src/metadata/database.js';
import { acquireGcLock, releaseGcLock } from '../../src/metadata/gc.js';
import { linkMirrorBlob } from '../../src/metadata/mirror.js';
import { noReceivers } from '../../src/metadata/audit.js';
import { storeVerifiedBlob } from '../../src/registry/verified-blob.js';
import { parseDigest } from '../../src/oci/digest.js';
import { rebuildMetadata } from '../../src/registry/rebuild.js';
import { storagePaths } from '../../src/storage/paths.js';
import { putSmallObject } from '../../src/storage/small-objects.js';
import { basic, fetchToken, passwords, writeTestPolicy } from '../helpers/auth.js';
import { testBlob, type TestBlob } from '../helpers/blobs.js';
import { allManifestTypes, imageManifest, indexOf, pushManifest, referrerOf, type TestManifest } from '../helpers/images.js';
import { binary, envelopeCode, pushBlob } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { mirrorConfigFor, startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { ManualClock } from '../helpers/clock.js';

const hour = 3_600_000;
const silent = { info() {}, warn() {}, error() {}, debug() {} } as unknown as ConstructorParameters<typeof GarbageCollector>[1];

const storesOf = (registry: TestRegistry) => registry.stores;
/** A collection with an hour's grace and no time machine (audit.timemachine 0: the audit tests cover it). */
const collect = (registry: TestRegistry, options: Partial<{ dryRun: boolean; untagged: boolean; graceMs: number }> = {}): Promise<GcReport> =>
  new GarbageCollector(storesOf(registry), silent, null, 0, noReceivers).run({ dryRun: false, untagged: false, graceMs: hour, ...options });

/** Moves every recorded time back, as if all that exists had been pushed and used long ago. */
async function ageEverything(registry: TestRegistry, by: number): Promise<void> {
  const db = registry.metadata.db;
  await db.updateTable('blobs').set((eb) => ({ created_at: eb('created_at', '-', by), used_at: eb('used_at', '-', by) })).execute();
  await db.updateTable('manifests').set((eb) => ({ created_at: eb('created_at', '-', by), used_at: eb('used_at', '-', by) })).execute();
  await db.updateTable('repository_blobs').set((eb) => ({ created_at: eb('created_at', '-', by) })).execute();
}

async function blobRow(registry: TestRegistry, digest: string): Promise<boolean> {
  return (await registry.metadata.db.selectFrom('blobs').select('digest').where('digest', '=', digest).executeTakeFirst()) !== undefined;
}

async function bytesStored(registry: TestRegistry, digest: string): Promise<boolean> {
  return (await registry.storage.stat(storagePaths.blobData(parseDigest(digest)))) !== null;
}

async function assertKept(registry: TestRegistry, blobs: Array<{ digest: string }>, what: string): Promise<void> {
  for (const blob of blobs) {
    assert.ok(await blobRow(registry, blob.digest), `${what}: the row of ${blob.digest} stays`);
    assert.ok(await bytesStored(registry, blob.digest), `${what}: the bytes of ${blob.digest} stay`);
  }
}

async function assertGone(registry: TestRegistry, blobs: Array<{ digest: string }>, what: string): Promise<void> {
  for (const blob of blobs) {
    assert.ok(!(await blobRow(registry, blob.digest)), `${what}: the row of ${blob.digest} is gone`);
    assert.ok(!(await bytesStored(registry, blob.digest)), `${what}: the bytes of ${blob.digest} are gone`);
  }
}

async function manifestRow(registry: TestRegistry, digest: string): Promise<boolean> {
  return (await registry.metadata.db.selectFrom('manifests').select('id').where('digest', '=', digest).executeTakeFirst()) !== undefined;
}

/** The manifest itself as a blob: its own bytes are stored and recorded like a layer's. */
const asBlob = (manifest: TestManifest) => ({ digest: manifest.digest });

async function pull(registry: TestRegistry, repository: string, reference: string, manifest: TestManifest): Promise<void> {
  const response = await registry.request.get(`/v2/${repository}/manifests/${reference}`).set('Accept', allManifestTypes).buffer(true).parse(binary).expect(200);
  assert.deepEqual(response.body, manifest.bytes);
  for (const blob of manifest.blobs) {
    const bytes = await registry.request.get(`/v2/${repository}/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
    assert.deepEqual(bytes.body, blob.bytes);
  }
}

describe('garbage collection: what is live stays, what nothing refers to goes', () => {
  let registry: TestRegistry;
  const image = imageManifest();
  const child = imageManifest();
  const innerIndex = indexOf([{ manifest: child, architecture: 'amd64' }]);
  const outerIndex = indexOf([{ manifest: innerIndex, architecture: 'amd64' }]);
  const signature = referrerOf(image, 'application/vnd.example.signature');
  const signatureOfSignature = referrerOf(signature, 'application/vnd.example.countersignature');
  const byDigest = imageManifest();
  const deleted = imageManifest();
  const unreferenced = testBlob(1500);
  const unlinked = testBlob(1600);
  const headed = testBlob(1700);
  const cached = testBlob(1800);
  const young = testBlob(1900);
  let report: GcReport;

  before(async () => {
    registry = await createTestRegistry();
    const request = registry.request;
    await pushManifest(request, 'team/app', 'v1', image);
    await pushManifest(request, 'team/app', signature.digest, signature);
    await pushManifest(request, 'team/app', signatureOfSignature.digest, signatureOfSignature);
    await pushManifest(request, 'team/multi', child.digest, child);
    await pushManifest(request, 'team/multi', innerIndex.digest, innerIndex);
    await pushManifest(request, 'team/multi', 'latest', outerIndex);
    await pushManifest(request, 'team/app', byDigest.digest, byDigest);
    await pushManifest(request, 'team/app', 'doomed', deleted);
    await request.delete(`/v2/team/app/manifests/${deleted.digest}`).expect(202);
    await pushBlob(request, 'team/app', unreferenced);
    await pushBlob(request, 'team/app', unlinked);
    await request.delete(`/v2/team/app/blobs/${unlinked.digest}`).expect(202);
    await pushBlob(request, 'team/app', headed);
    // As a mirror fetch or a carried-in bundle leaves it: verified bytes, linked into the upstream repository's cache.
    await storeVerifiedBlob(storesOf(registry), parseDigest(cached.digest), cached.bytes.length, Readable.from([cached.bytes]));
    await linkMirrorBlob(registry.metadata.db, { upstream: 'docker.io', repository: 'library/alpine' }, cached.digest, registry.clock.now());
    await ageEverything(registry, 2 * hour);
    // After the push long ago: a client HEADs a layer it is about to name, another uploads one.
    await request.head(`/v2/team/app/blobs/${headed.digest}`).expect(200);
    await pushBlob(request, 'team/app', young);
    report = await collect(registry);
  });
  after(async () => registry?.close());

  it('keeps tagged images, indexes two levels deep, referrers of referrers, untagged manifests, the mirror cache, young links and recently used blobs', async () => {
    assert.equal(report.state, 'succeeded', report.error);
    await assertKept(registry, [...image.blobs, asBlob(image)], 'a tagged image');
    await assertKept(registry, [...child.blobs, asBlob(child), asBlob(innerIndex), asBlob(outerIndex)], 'an index of an index');
    await assertKept(registry, [...signature.blobs, asBlob(signature), ...signatureOfSignature.blobs, asBlob(signatureOfSignature)], 'referrers');
    await assertKept(registry, [...byDigest.blobs, asBlob(byDigest)], 'a manifest pushed by digest (untagged collection is off)');
    await assertKept(registry, [cached], 'the mirror cache');
    await assertKept(registry, [young], 'an upload no manifest names yet, within the grace window');
    await assertKept(registry, [headed], 'a blob used (HEAD) within the grace window');
    await pull(registry, 'team/app', 'v1', image);
    await pull(registry, 'team/multi', child.digest, child);
    const referrers = await registry.request.get(`/v2/team/app/referrers/${signature.digest}`).expect(200);
    assert.deepEqual((referrers.body as { manifests: Array<{ digest: string }> }).manifests.map((entry) => entry.digest), [signatureOfSignature.digest]);
  });

  it('removes the layers of a deleted manifest, unreferenced and unlinked blobs: rows, links and bytes', async () => {
    await assertGone(registry, [...deleted.blobs, asBlob(deleted)], 'a deleted manifest');
    await assertGone(registry, [unreferenced], 'a blob nothing named');
    await assertGone(registry, [unlinked], 'a blob unlinked from its repository');
    const links = await registry.metadata.db.selectFrom('repository_blobs').select('digest').where('digest', 'in', [unreferenced.digest, ...deleted.blobs.map((blob) => blob.digest)]).execute();
    assert.deepEqual(links, []);
    assert.equal(report.blobs, deleted.blobs.length + 1 + 2, 'the deleted manifest\'s blobs and own bytes, the unreferenced and the unlinked blob');
    assert.equal(report.bytes, [...deleted.blobs, unreferenced, unlinked].reduce((sum, blob) => sum + blob.bytes.length, 0) + deleted.bytes.length);
    assert.equal(report.manifests, 0);
    const pending = await registry.metadata.db.selectFrom('gc_pending').selectAll().execute();
    assert.deepEqual(pending, [], 'nothing left pending');
  });

  it('the report is kept, with its counts', async () => {
    const run = await registry.request.get(`/api/v1/gc/${report.id}`).expect(200);
    const body = run.body as { state: string; dryRun: boolean; report: GcReport };
    assert.equal(body.state, 'succeeded');
    assert.equal(body.dryRun, false);
    assert.equal(body.report.blobs, report.blobs);
    const list = await registry.request.get('/api/v1/gc').expect(200);
    assert.equal((list.body as { runs: Array<{ id: number }> }).runs[0]?.id, report.id);
  });
});

describe('garbage collection of untagged manifests, dry runs, storage links and rebuilds', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await createTestRegistry();
  });
  after(async () => registry?.close());

  it('with untagged: a moved tag\'s old manifest goes (its referrers too); what the new one shares stays; a dry run changes nothing', async () => {
    const request = registry.request;
    const old = imageManifest();
    const shared = old.blobs[0]!;
    const moved = imageManifest({ config: shared });
    const oldSignature = referrerOf(old);
    await pushManifest(request, 'team/app', 'v1', old);
    await pushManifest(request, 'team/app', oldSignature.digest, oldSignature);
    await pushManifest(request, 'team/app', 'v1', moved);
    await ageEverything(registry, 2 * hour);

    const keptWithoutUntagged = await collect(registry);
    assert.equal(keptWithoutUntagged.manifests, 0);
    assert.ok(await manifestRow(registry, old.digest), 'without untagged the old manifest stays');

    const filesBefore = await registry.storedFiles();
    const rowsBefore = await registry.rowCounts();
    const dry = await collect(registry, { untagged: true, dryRun: true });
    assert.deepEqual(await registry.storedFiles(), filesBefore, 'a dry run deletes no byte');
    assert.deepEqual(await registry.rowCounts(), rowsBefore, 'a dry run deletes no row');
    assert.deepEqual(dry.wouldRemove?.manifests.map((manifest) => manifest.digest).sort(), [old.digest, oldSignature.digest].sort());
    assert.ok(dry.wouldRemove?.blobs.some((blob) => blob.digest === old.blobs[1]!.digest));
    assert.ok(!dry.wouldRemove?.blobs.some((blob) => blob.digest === shared.digest), 'a blob the new manifest shares would stay');

    const real = await collect(registry, { untagged: true });
    assert.equal(real.manifests, 2);
    assert.equal(real.blobs, dry.blobs, 'the dry run said what the run did');
    assert.ok(!(await manifestRow(registry, old.digest)));
    assert.ok(!(await manifestRow(registry, oldSignature.digest)));
    await assertGone(registry, [old.blobs[1]!, asBlob(old), asBlob(oldSignature)], 'the old manifest');
    await assertKept(registry, [shared, moved.blobs[1]!, asBlob(moved)], 'the current manifest');
    await pull(registry, 'team/app', 'v1', moved);
    const files = await registry.storedFiles();
    assert.ok(!files.some((file) => file.includes(old.digest.slice(7))), 'no link of the old manifest stays in storage');
    await registry.request.get(`/v2/team/app/manifests/${old.digest}`).set('Accept', allManifestTypes).expect(404);
  });

  it('a rebuild of the database from storage does not bring collected content back', async () => {
    const url = `sqlite:${registry.root}/rebuilt.db`;
    const rebuilt = await openMetadataDatabase(url);
    try {
      const summary = await rebuildMetadata({ storage: registry.storage, metadata: rebuilt.db, clock: registry.clock });
      assert.deepEqual(summary.skipped, [], 'nothing in storage names what is gone');
      const digests = (await rebuilt.db.selectFrom('manifests').select('digest').execute()).map((row) => row.digest).sort();
      const live = (await registry.metadata.db.selectFrom('manifests').select('digest').execute()).map((row) => row.digest).sort();
      assert.deepEqual(digests, live);
    } finally {
      await rebuilt.close();
    }
  });
});

/** A registry with token auth (the test policy's accounts), an hour's grace and a clock the test moves. */
async function tokenRegistry(clock: ManualClock): Promise<TestRegistry> {
  const files = await writeTestPolicy();
  return createTestRegistry({ clock, auth: { mode: 'token', policy: files.policy }, gc: { graceMs: hour, untagged: false } });
}

describe('garbage collection: orphaned bytes, uploads racing a run, the HTTP API and its lock', () => {
  let registry: TestRegistry;
  const clock = new ManualClock();
  before(async () => {
    registry = await tokenRegistry(clock);
  });
  after(async () => {
    await registry?.close();
  });

  it('removes bytes no row names once they are older than the grace window, and keeps younger ones', async () => {
    const orphan = testBlob(1234);
    await putSmallObject(registry.storage, storagePaths.blobData(parseDigest(orphan.digest)), orphan.bytes);
    const kept = await collect(registry, { graceMs: hour });
    assert.equal(kept.orphans, 0);
    assert.ok(await bytesStored(registry, orphan.digest), 'written just now: kept');
    clock.catchUp();
    clock.advance(1100);
    const removed = await collect(registry, { graceMs: 1 });
    assert.equal(removed.orphans, 1);
    assert.equal(removed.orphanBytes, orphan.bytes.length);
    assert.ok(!(await bytesStored(registry, orphan.digest)));
  });

  it('a claim of a writer that died a day ago no longer keeps its digest', async () => {
    const lost = testBlob(777);
    await putSmallObject(registry.storage, storagePaths.blobData(parseDigest(lost.digest)), lost.bytes);
    await registry.metadata.db.insertInto('blob_writes').values({ id: 'crashed-writer', digest: lost.digest, started_at: clock.now() - 25 * hour }).execute();
    clock.catchUp();
    clock.advance(1100);
    const report = await collect(registry, { graceMs: 1 });
    assert.equal(report.orphans, 1, 'its bytes, which no row names, are an orphan');
    assert.ok(!(await bytesStored(registry, lost.digest)));
    assert.deepEqual(await registry.metadata.db.selectFrom('blob_writes').selectAll().execute(), []);
  });

  it('finishes first the deletions a run that died left pending (its rows gone, its bytes not)', async () => {
    const left = testBlob(999);
    const key = storagePaths.blobData(parseDigest(left.digest));
    await putSmallObject(registry.storage, key, left.bytes);
    await registry.metadata.db.insertInto('gc_pending').values({ key, digest: left.digest, created_at: Date.now() - hour }).execute();
    const report = await collect(registry);
    assert.equal(report.leftovers, 1);
    assert.ok(!(await bytesStored(registry, left.digest)));
    assert.deepEqual(await registry.metadata.db.selectFrom('gc_pending').selectAll().execute(), []);
  });

  it('an upload of a digest whose old bytes a run is deleting waits for it, then stores its own; a stale pending deletion does not hold it', async () => {
    const blob = testBlob(2222);
    const token = await fetchToken(registry.request, ['alice', passwords.alice], ['repository:team-a/race:pull,push']);
    const agent = registry.request;
    const auth = `Bearer ${token}`;
    const key = storagePaths.blobData(parseDigest(blob.digest));
    // A run that holds the lease has removed the rows of the digest's old bytes and is about to delete them.
    await putSmallObject(registry.storage, key, blob.bytes);
    await acquireGcLock(registry.metadata.db, 'elsewhere:1:run', 60_000, Date.now());
    await registry.metadata.db.insertInto('gc_pending').values({ key, digest: blob.digest, created_at: Date.now() }).execute();
    const started = await agent.post('/v2/team-a/race/blobs/uploads/').set('Authorization', auth).expect(202);
    const location = started.headers.location as string;
    await agent.patch(location).set('Authorization', auth).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(202);
    let finished = false;
    const put = agent
      .put(`${location}?digest=${blob.digest}`)
      .set('Authorization', auth)
      .then((response) => {
        finished = true;
        return response;
      });
    // The PUT is asleep in its claim loop (on the registry's clock), waiting for the run.
    await clock.waitForSleepers(1);
    assert.equal(finished, false, 'the final PUT waits while the run deletes the old bytes');
    await registry.storage.delete(key);
    await registry.metadata.db.deleteFrom('gc_pending').where('key', '=', key).execute();
    await releaseGcLock(registry.metadata.db, 'elsewhere:1:run');
    clock.advance(50);
    assert.equal((await put).status, 201);
    assert.ok(await bytesStored(registry, blob.digest), 'the upload moved its own bytes in');
    assert.ok(await blobRow(registry, blob.digest));

    // A pending deletion whose run died (no lease): the upload goes ahead and forgets it.
    const other = testBlob(3333);
    const otherKey = storagePaths.blobData(parseDigest(other.digest));
    await registry.metadata.db.insertInto('gc_pending').values({ key: otherKey, digest: other.digest, created_at: Date.now() }).execute();
    await pushBlobWith(agent, auth, 'team-a/race', other);
    assert.ok(await bytesStored(registry, other.digest));
    assert.deepEqual(await registry.metadata.db.selectFrom('gc_pending').selectAll().execute(), []);
  });

  it('POST /api/v1/gc starts a run (202 and its id); another while one holds the lease is 409; runs and reports are listed; it needs the operator grant', async () => {
    const tokenFor = async (credentials: string, scope: string) =>
      ((await registry.request.get(`/auth/token?service=registry&scope=${scope}`).set('Authorization', credentials).expect(200)).body as { token: string }).token;
    const operatorToken = `Bearer ${await tokenFor(basic('olga', passwords.olga), 'registry:operator:*')}`;
    const catalogOnly = `Bearer ${await tokenFor(basic('alice', passwords.alice), 'registry:operator:*')}`;
    const bobToken = `Bearer ${await tokenFor(basic('bob', passwords.bob), 'registry:operator:*')}`;
    assert.equal((await registry.request.post('/api/v1/gc?dryrun=true').expect(401)).status, 401);
    assert.equal(envelopeCode(await registry.request.post('/api/v1/gc?dryrun=true').set('Authorization', bobToken).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await registry.request.post('/api/v1/gc?dryrun=true').set('Authorization', catalogOnly).expect(403)), 'DENIED', 'the catalog grant is not enough');
    assert.equal(envelopeCode(await registry.request.get('/api/v1/gc').set('Authorization', catalogOnly).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await registry.request.post('/api/v1/gc?dryrun=maybe').set('Authorization', operatorToken).expect(400)), 'PARAMETER_INVALID');

    await acquireGcLock(registry.metadata.db, 'other-host:1:busy', 60_000, Date.now());
    const busy = await registry.request.post('/api/v1/gc?dryrun=true').set('Authorization', operatorToken).expect(409);
    assert.match(String((busy.body as { errors: Array<{ message: string }> }).errors[0]?.message), /another garbage collection is running \(other-host:1:busy\)/);
    await releaseGcLock(registry.metadata.db, 'other-host:1:busy');

    const started = await registry.request.post('/api/v1/gc?dryrun=true').set('Authorization', operatorToken).expect(202);
    const id = (started.body as { id: number }).id;
    assert.equal(started.headers.location, `/api/v1/gc/${id}`);
    let run: { state: string; dryRun: boolean; report: GcReport | null } | undefined;
    for (let attempt = 0; attempt < 100; attempt++) {
      run = (await registry.request.get(`/api/v1/gc/${id}`).set('Authorization', operatorToken).expect(200)).body as typeof run;
      if (run?.state !== 'running') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(run?.state, 'succeeded');
    assert.equal(run?.dryRun, true);
    assert.ok(run?.report?.wouldRemove, 'a dry run lists what would go');
    const list = (await registry.request.get('/api/v1/gc').set('Authorization', operatorToken).expect(200)).body as { runs: Array<{ id: number; report: Record<string, unknown> }> };
    assert.equal(list.runs[0]?.id, id);
    assert.equal(list.runs[0]?.report.wouldRemove, undefined, 'the list leaves the dry-run lists out');
    assert.equal(envelopeCode(await registry.request.get('/api/v1/gc/999999').set('Authorization', operatorToken).expect(404)), 'NOT_FOUND');
  });
});

describe('garbage collection over HTTP: grace and untagged asked for, and what the grace window keeps', () => {
  let registry: TestRegistry;
  const clock = new ManualClock();
  before(async () => {
    registry = await tokenRegistry(clock);
  });
  after(async () => registry?.close());

  it('POST /api/v1/gc?grace=&untagged= runs with them; the report counts what the grace window kept; bad values are 400 naming the parameter', async () => {
    const operator = `Bearer ${await fetchToken(registry.request, ['olga', passwords.olga], ['registry:operator:*'])}`;
    const dryRun = async (query: string): Promise<GcReport> => {
      const started = await registry.request.post(`/api/v1/gc?dryrun=true${query}`).set('Authorization', operator).expect(202);
      for (let attempt = 0; attempt < 200; attempt++) {
        const run = (await registry.request.get(`/api/v1/gc/${(started.body as { id: number }).id}`).set('Authorization', operator).expect(200)).body as { state: string; report: GcReport };
        if (run.state !== 'running') return run.report;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error('the run did not finish');
    };
    // A blob pushed without a manifest naming it: garbage once the grace window has passed.
    const unnamed = testBlob(4321);
    const push = `Bearer ${await fetchToken(registry.request, ['alice', passwords.alice], ['repository:team-a/unnamed:pull,push'])}`;
    await pushBlobWith(registry.request, push, 'team-a/unnamed', unnamed);
    clock.advance(1000);
    const withDefaults = await dryRun('');
    assert.deepEqual([withDefaults.graceMs, withDefaults.untagged, withDefaults.blobs], [hour, false, 0]);
    assert.deepEqual(withDefaults.kept.grace, { manifests: 0, blobs: 1, bytes: unnamed.bytes.length }, 'kept by the hour of grace');
    assert.deepEqual(withDefaults.kept.timeMachine, { manifests: 0, blobs: 0, bytes: 0 });
    const noGrace = await dryRun('&grace=0s&untagged=true');
    assert.deepEqual([noGrace.graceMs, noGrace.untagged, noGrace.blobs, noGrace.bytes], [0, true, 1, unnamed.bytes.length]);
    assert.deepEqual(noGrace.kept.grace, { manifests: 0, blobs: 0, bytes: 0 });
    for (const [query, parameter] of [['&grace=soon', 'grace'], ['&untagged=yes', 'untagged'], ['&grace=-1s', 'grace']] as const) {
      const refused = await registry.request.post(`/api/v1/gc?dryrun=true${query}`).set('Authorization', operator).expect(400);
      assert.equal(envelopeCode(refused), 'PARAMETER_INVALID');
      assert.deepEqual((refused.body as { errors: Array<{ detail: { parameter: string } }> }).errors[0]!.detail.parameter, parameter);
    }
    assert.ok(await bytesStored(registry, unnamed.digest), 'dry runs deleted nothing');
  });
});

describe('garbage collection: mirror cache eviction (retention, maxsize)', () => {
  let upstream: TestUpstream;
  const images = [imageManifest({ layerSize: 10_000 }), imageManifest({ layerSize: 10_000 }), imageManifest({ layerSize: 10_000 })];
  before(async () => {
    upstream = await startTestUpstream();
    const pusher = await upstream.pusher(['repository:team-a/cached:pull,push']);
    for (const [index, manifest] of images.entries()) await pushManifest(pusher, 'team-a/cached', `v${index}`, manifest);
  });
  after(async () => upstream?.close());

  /** Pulls an image through the mirror (manifest and blobs), and waits until its blobs' cache rows are in (they follow the last byte). */
  const pullThrough = async (mirror: TestRegistry, index: number) => {
    await pull(mirror, 'central/team-a/cached', `v${index}`, images[index]!);
    const digests = images[index]!.blobs.map((blob) => blob.digest);
    for (let attempt = 0; attempt < 100; attempt++) {
      const rows = await mirror.metadata.db.selectFrom('mirror_blobs').select('digest').where('digest', 'in', digests).execute();
      if (rows.length === digests.length) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error('the blobs were not cached');
  };
  /** As if the image had been pulled last `by` ago. */
  const ageCached = async (mirror: TestRegistry, index: number, by: number) => {
    const db = mirror.metadata.db;
    await db.updateTable('mirror_manifests').set({ used_at: Date.now() - by, fetched_at: Date.now() - by }).where('digest', '=', images[index]!.digest).execute();
    await db.updateTable('blobs').set({ created_at: Date.now() - by, used_at: Date.now() - by }).where('digest', 'in', images[index]!.blobs.map((blob) => blob.digest)).execute();
  };
  const cachedTags = async (mirror: TestRegistry) => (await mirror.metadata.db.selectFrom('mirror_tags').select('tag').orderBy('tag').execute()).map((row) => row.tag);
  const gcOf = (mirror: TestRegistry) => mirror.registry.services.gc.collector;

  it('with a retention, images not pulled within it are evicted and their bytes freed; others, and everything without a retention, stay', async () => {
    const mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**'], retention: '1h' }) });
    const forever = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**'] }) });
    try {
      for (const registry of [mirror, forever]) {
        await pullThrough(registry, 0);
        await pullThrough(registry, 1);
        await ageCached(registry, 0, 2 * hour);
      }
      const report = await gcOf(mirror).run({ dryRun: false, untagged: false, graceMs: 60_000 });
      assert.equal(report.evicted, 1);
      assert.deepEqual(await cachedTags(mirror), ['v1']);
      await assertGone(mirror, [images[0]!.blobs[1]!], 'the evicted image\'s layer');
      await assertKept(mirror, [images[1]!.blobs[1]!], 'the image pulled lately');
      const history = await mirror.request.get('/api/v1/mirror/history?tag=v0').expect(200);
      assert.equal((history.body as { events: Array<{ action: string }> }).events[0]?.action, 'evicted');
      await pullThrough(mirror, 0); // online, it is fetched again

      const kept = await gcOf(forever).run({ dryRun: false, untagged: false, graceMs: 60_000 });
      assert.equal(kept.evicted, 0, 'retention 0: an offline site never loses an image it had');
      assert.deepEqual(await cachedTags(forever), ['v0', 'v1']);
      await assertKept(forever, images[0]!.blobs, 'a cached image, however old');
    } finally {
      await mirror.close();
      await forever.close();
    }
  });

  it('past mirror.cache.maxsize the least recently pulled images go first, never one pulled within the grace window', async () => {
    const oneImage = images[0]!.blobs.reduce((sum, blob) => sum + blob.bytes.length, 0);
    const mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**'] }, { cache: { maxsize: String(oneImage + 100) } }) });
    try {
      for (const index of [0, 1, 2]) await pullThrough(mirror, index);
      await ageCached(mirror, 0, 3 * hour);
      await ageCached(mirror, 1, 2 * hour);
      const dry = await gcOf(mirror).run({ dryRun: true, untagged: false, graceMs: 60_000 });
      assert.deepEqual(dry.wouldRemove?.evicted.map((image) => [image.digest, image.reason]), [[images[0]!.digest, 'maxsize'], [images[1]!.digest, 'maxsize']]);
      assert.deepEqual(await cachedTags(mirror), ['v0', 'v1', 'v2'], 'a dry run evicts nothing');
      const report = await gcOf(mirror).run({ dryRun: false, untagged: false, graceMs: 60_000 });
      assert.equal(report.evicted, 2);
      assert.deepEqual(await cachedTags(mirror), ['v2'], 'the oldest two went; the one pulled just now stays though the cache is still over its size');
      await assertKept(mirror, images[2]!.blobs, 'the image pulled within the grace window');
    } finally {
      await mirror.close();
    }
  });
});

async function pushBlobWith(request: TestRegistry['request'], authorization: string, repository: string, blob: TestBlob): Promise<void> {
  const started = await request.post(`/v2/${repository}/blobs/uploads/`).set('Authorization', authorization).expect(202);
  const location = started.headers.location as string;
  await request.patch(location).set('Authorization', authorization).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(202);
  await request.put(`${location}?digest=${blob.digest}`).set('Authorization', authorization).expect(201);
}
