import { sql, type RawBuilder } from 'kysely';
import { engineOf, type MetadataDb, type MetadataExecutor } from './database.js';
import { appendAuditEvents, type AuditOrigin, type NewAuditEvent, type OutboxPayloads } from './audit.js';

/**
 * The queries of garbage collection. `cutoff` is a time (ms): what was created or used at or after
 * it is young, and so kept. What is garbage is decided by set-based SQL over the reference tables
 * (never a walk of storage), then re-checked, row by row, in the transaction that deletes it.
 */

/** How fine a use is recorded: at most one write per object per this many milliseconds. */
export const touchResolutionMs = 1000;

const recentTouches = new WeakMap<object, Map<string, number>>();

/**
 * Whether this process recorded a use of the object within the resolution already (then the
 * database holds a use that recent, and no statement is needed); else notes this one.
 */
export function touchedLately(db: MetadataExecutor, key: string, now: number): boolean {
  let touches = recentTouches.get(db);
  if (!touches) recentTouches.set(db, (touches = new Map()));
  const last = touches.get(key);
  if (last !== undefined && now - last < touchResolutionMs) return true;
  if (touches.size >= 10_000) touches.clear();
  touches.set(key, now);
  return false;
}

/**
 * Records a use of a blob (a HEAD or GET, a mount) before it is answered; answers whether the blob
 * row still exists. Written only when the last recorded use is older than the resolution, so a hot
 * layer costs one write a second, not one per request.
 *
 * Race closed (a client HEADs a layer, skips its upload, then PUTs a manifest naming it): the use is
 * committed before the HEAD is answered, and a collection deletes a blob only if, in its deleting
 * transaction, the recorded use is older than its grace window. On PostgreSQL the delete locks the
 * row first (FOR UPDATE), so a touch either commits before (and the delete keeps the blob) or finds
 * the row gone (and the HEAD answers 404, so the client uploads).
 */
export async function touchBlob(db: MetadataExecutor, digest: string, now: number): Promise<void> {
  if (touchedLately(db, `blob\0${digest}`, now)) return;
  await db.updateTable('blobs').set({ used_at: now }).where('digest', '=', digest).where('used_at', '<', now - touchResolutionMs).execute();
}

/** Records a GET or HEAD of a manifest by digest (an index about to name it, a client about to pull it). */
export async function touchManifest(db: MetadataExecutor, repositoryName: string, digest: string, now: number): Promise<void> {
  if (touchedLately(db, `manifest\0${repositoryName}\0${digest}`, now)) return;
  await db
    .updateTable('manifests')
    .set({ used_at: now })
    .where('digest', '=', digest)
    .where('used_at', '<', now - touchResolutionMs)
    .where('repository_id', 'in', (eb) => eb.selectFrom('repositories').select('id').where('name', '=', repositoryName))
    .execute();
}

// --- the lock: one collection at a time, across processes and replicas -------------------------

const lockName = 'gc';

/**
 * Takes the collection lease when it is free or expired (or held by `staleHolder`, a holder known to
 * be dead); answers who holds it afterwards. One statement both takes it and answers the holder, so
 * two runs racing for it cannot both win, and a holder releasing it meanwhile cannot leave the
 * answer empty (as a second statement reading the holder could: seen, a `registry gc` failing so).
 */
export async function acquireGcLock(db: MetadataExecutor, holder: string, leaseMs: number, now: number, staleHolder?: string): Promise<string> {
  const free = staleHolder === undefined ? sql<boolean>`gc_lock.expires_at < ${now}` : sql<boolean>`(gc_lock.expires_at < ${now} or gc_lock.holder = ${staleHolder})`;
  const row = await db
    .insertInto('gc_lock')
    .values({ name: lockName, holder, expires_at: now + leaseMs })
    .onConflict((conflict) =>
      conflict.column('name').doUpdateSet({
        holder: sql<string>`case when ${free} then excluded.holder else gc_lock.holder end`,
        expires_at: sql<number>`case when ${free} then excluded.expires_at else gc_lock.expires_at end`,
      }),
    )
    .returning('holder')
    .executeTakeFirstOrThrow();
  return row.holder;
}

/** Extends the lease; false when it was lost (expired and taken by another run). */
export async function renewGcLock(db: MetadataExecutor, holder: string, leaseMs: number, now: number): Promise<boolean> {
  const result = await db.updateTable('gc_lock').set({ expires_at: now + leaseMs }).where('name', '=', lockName).where('holder', '=', holder).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function releaseGcLock(db: MetadataExecutor, holder: string): Promise<void> {
  await db.deleteFrom('gc_lock').where('name', '=', lockName).where('holder', '=', holder).execute();
}

/** Who holds an unexpired lease, if anyone. */
export async function currentGcHolder(db: MetadataExecutor, now: number): Promise<{ holder: string; expiresAt: number } | undefined> {
  const row = await db.selectFrom('gc_lock').select(['holder', 'expires_at']).where('name', '=', lockName).executeTakeFirst();
  return row && Number(row.expires_at) >= now ? { holder: row.holder, expiresAt: Number(row.expires_at) } : undefined;
}

// --- the mark -----------------------------------------------------------------------------------

export interface ManifestRef {
  id: number;
  repository: string;
  digest: string;
}

export interface BlobRef {
  digest: string;
  size: number;
}

/**
 * The manifests nothing keeps (with `untagged` collection): not tagged, not younger than the cutoff,
 * not pointed at by a tag since `taggedSince` (the audit time machine: a restore within
 * audit.timemachine must find its manifest, so every digest an audit event moved a local tag from or
 * to since then is live), not a child of a live index, not a referrer of a live subject, transitively.
 */
/**
 * The time machine's condition on an audit event `a` joined to its repository `r` and a manifest
 * `m`: a local tag moved from or to the manifest since `taggedSince`. The mark and the re-check at
 * delete time both keep what it names.
 */
function movedByTagSince(taggedSince: number): RawBuilder<unknown> {
  return sql`m.repository_id = r.id and m.digest in (a.from_digest, a.to_digest) and a.at >= ${taggedSince} and a.target = 'tag' and a.upstream is null`;
}

function liveManifests(cutoff: number, taggedSince: number): RawBuilder<unknown> {
  return sql`
    edges(from_id, to_id) as (
      select parent_id, child_id from manifest_children
      union all
      select s.id, m.id from manifests m join manifests s on s.repository_id = m.repository_id and s.digest = m.subject_digest
    ),
    live(id) as (
      select manifest_id from tags
      union select id from manifests where created_at >= ${cutoff} or used_at >= ${cutoff}
      union select m.id from audit_events a
        join repositories r on r.name = a.repository
        join manifests m on ${movedByTagSince(taggedSince)}
      union select e.to_id from edges e join live on e.from_id = live.id
    )`;
}

export async function findGarbageManifests(db: MetadataExecutor, cutoff: number, taggedSince: number): Promise<ManifestRef[]> {
  const { rows } = await sql<{ id: number; repository: string; digest: string }>`
    with recursive ${liveManifests(cutoff, taggedSince)}
    select m.id, r.name as repository, m.digest from manifests m join repositories r on r.id = m.repository_id
    where m.id not in (select id from live)
    order by m.id`.execute(db);
  return rows.map((row) => ({ id: Number(row.id), repository: row.repository, digest: row.digest }));
}

/** A write of bytes (a claim in blob_writes) older than this is taken for one whose process died. */
export const blobWriteExpiryMs = 24 * 3_600_000;

/**
 * Conditions under which a blob row is garbage: old (created and last used before the cutoff), and
 * named by no manifest (as a layer, a config or a manifest's own bytes) except those in `leaving`,
 * by no mirror cache entry, by no link younger than the cutoff (an upload or mount a manifest has
 * yet to name), and by no write of its bytes in progress.
 */
function blobIsGarbage(cutoff: number, leaving: RawBuilder<unknown> | null): RawBuilder<unknown> {
  const notLeaving = (column: string) => (leaving ? sql`and ${sql.ref(column)} not in (${leaving})` : sql``);
  return sql`
    b.created_at < ${cutoff} and b.used_at < ${cutoff}
    and not exists (select 1 from manifest_blobs mb where mb.digest = b.digest ${notLeaving('mb.manifest_id')})
    and not exists (select 1 from manifests m where m.digest = b.digest ${notLeaving('m.id')})
    and not exists (select 1 from mirror_blobs x where x.digest = b.digest)
    and not exists (select 1 from repository_blobs rb where rb.digest = b.digest and rb.created_at >= ${cutoff})
    and not exists (select 1 from blob_writes w where w.digest = b.digest)`;
}

/**
 * Blob rows that are garbage now; with `untagged`, as they will be once the garbage manifests are
 * gone (for a dry run, and to size the work of a real one).
 */
export async function findGarbageBlobs(db: MetadataExecutor, cutoff: number, untagged: boolean, taggedSince = cutoff): Promise<BlobRef[]> {
  const query = untagged
    ? sql<BlobRef>`
        with recursive ${liveManifests(cutoff, taggedSince)}
        select b.digest, b.size from blobs b where ${blobIsGarbage(cutoff, sql`select id from manifests where id not in (select id from live)`)}
        order by b.digest`
    : sql<BlobRef>`select b.digest, b.size from blobs b where ${blobIsGarbage(cutoff, null)} order by b.digest`;
  const { rows } = await query.execute(db);
  return rows.map((row) => ({ digest: row.digest, size: Number(row.size) }));
}

/** Of these digests, those with no blob row and no write of them in progress (bytes left by a crash). */
export async function findUnrecordedDigests(db: MetadataExecutor, digests: string[]): Promise<string[]> {
  if (digests.length === 0) return [];
  const recorded = new Set((await db.selectFrom('blobs').select('digest').where('digest', 'in', digests).execute()).map((row) => row.digest));
  const writing = new Set((await db.selectFrom('blob_writes').select('digest').where('digest', 'in', digests).execute()).map((row) => row.digest));
  const pending = new Set((await db.selectFrom('gc_pending').select('digest').where('digest', 'in', digests).execute()).map((row) => row.digest));
  return digests.filter((digest) => !recorded.has(digest) && !writing.has(digest) && !pending.has(digest));
}

// --- the sweep: re-checked deletes ----------------------------------------------------------------

/**
 * Opens the deleting transaction with a write (the lease renewed), so that on SQLite the writer lock
 * is held from the first statement: the re-checks then read what no other process can change before
 * the commit. On PostgreSQL the rows to delete are locked FOR UPDATE before the re-check: a
 * concurrent insert naming them (a tag, a manifest's blob, a child link) waits on its foreign key
 * until the commit, and then fails instead of pointing at a deleted row.
 */
async function beginDeleting(db: MetadataExecutor, holder: string, leaseMs: number, now: number): Promise<void> {
  if (!(await renewGcLock(db, holder, leaseMs, now))) throw new GcLockLostError();
}

export class GcLockLostError extends Error {
  constructor() {
    super('the garbage collection lease was lost (another run took it over): stopping');
    this.name = 'GcLockLostError';
  }
}

/**
 * Deletes those of the candidate manifests that are still garbage, re-checked in this transaction:
 * not tagged, not young, and no live manifest above them (an index naming them, a subject they
 * refer to, transitively); one still named by any index row waits for a later round. Their storage
 * links become pending deletions in the same transaction.
 *
 * Race closed: a tag moved onto a manifest, or an index naming it pushed, while the mark ran (the
 * mark's answer is only a candidate list); a tag moved off it meanwhile (its audit event is younger
 * than `taggedSince`). Each manifest deleted is a `collected` audit event in the same transaction.
 */
export async function deleteGarbageManifests(
  db: MetadataDb,
  candidates: ManifestRef[],
  cutoff: number,
  taggedSince: number,
  lease: { holder: string; leaseMs: number },
  recordedAs: { origin: AuditOrigin; detail: string | null; outbox: OutboxPayloads },
  linkKeyOf: (manifest: ManifestRef) => string,
  now: number,
): Promise<ManifestRef[]> {
  if (candidates.length === 0) return [];
  return db.transaction().execute(async (transaction) => {
    await beginDeleting(transaction, lease.holder, lease.leaseMs, now);
    const ids = candidates.map((candidate) => candidate.id);
    await lockDigests(transaction, [...new Set(candidates.map((candidate) => candidate.digest))]);
    if (engineOf(transaction) === 'postgres') {
      await transaction.selectFrom('manifests').select('id').where('id', 'in', ids).forUpdate().execute();
    }
    const idList = sql.join(ids);
    const { rows: live } = await sql<{ id: number }>`
      with recursive up(origin, id) as (
        select id, id from manifests where id in (${idList})
        union
        select up.origin, p.id from up
          join manifests m on m.id = up.id
          join manifests p on p.id in (select parent_id from manifest_children where child_id = m.id)
            or (p.repository_id = m.repository_id and p.digest = m.subject_digest)
      )
      select distinct up.origin as id from up join manifests m on m.id = up.id
      where m.created_at >= ${cutoff} or m.used_at >= ${cutoff} or exists (select 1 from tags t where t.manifest_id = m.id)
        or exists (select 1 from audit_events a join repositories r on r.name = a.repository where ${movedByTagSince(taggedSince)})`.execute(transaction);
    const named = await transaction.selectFrom('manifest_children').select('child_id').distinct().where('child_id', 'in', ids).execute();
    const keep = new Set([...live.map((row) => Number(row.id)), ...named.map((row) => Number(row.child_id))]);
    const existing = new Set((await transaction.selectFrom('manifests').select('id').where('id', 'in', ids).execute()).map((row) => Number(row.id)));
    // Being pushed again right now (its bytes and link written, its rows not yet): kept.
    const writing = new Set(
      (await transaction.selectFrom('blob_writes').select('digest').where('digest', 'in', candidates.map((candidate) => candidate.digest)).execute()).map((row) => row.digest),
    );
    const confirmed = candidates.filter((candidate) => existing.has(candidate.id) && !keep.has(candidate.id) && !writing.has(candidate.digest));
    if (confirmed.length === 0) return [];
    const confirmedIds = confirmed.map((manifest) => manifest.id);
    await transaction.deleteFrom('manifest_blobs').where('manifest_id', 'in', confirmedIds).execute();
    await transaction.deleteFrom('manifest_children').where('parent_id', 'in', confirmedIds).execute();
    await transaction.deleteFrom('manifests').where('id', 'in', confirmedIds).execute();
    // Under the manifest's digest: a push of the same manifest waits until its old link is gone.
    await addPending(transaction, confirmed.map((manifest) => ({ key: linkKeyOf(manifest), digest: manifest.digest })), now);
    const collected = confirmed.map(
      (manifest): NewAuditEvent => ({ target: 'manifest', repository: manifest.repository, tag: null, upstream: null, action: 'collected', from: manifest.digest, to: null, mediaType: null, detail: recordedAs.detail }),
    );
    await appendAuditEvents(transaction, collected, recordedAs.origin, now, recordedAs.outbox);
    return confirmed;
  });
}

/**
 * Deletes those of the candidate blobs that are still garbage, re-checked in this transaction (see
 * `blobIsGarbage`), with their repository links; their bytes become pending deletions in the same
 * transaction, which uploads of the same digest wait for.
 *
 * Races closed: a manifest naming the blob pushed, a mount of it, a use of it (HEAD), or an upload
 * of it being published, since the mark ran.
 */
export async function deleteGarbageBlobs(
  db: MetadataDb,
  candidates: string[],
  cutoff: number,
  lease: { holder: string; leaseMs: number },
  bytesKeyOf: (digest: string) => string,
  now: number,
): Promise<BlobRef[]> {
  if (candidates.length === 0) return [];
  return db.transaction().execute(async (transaction) => {
    await beginDeleting(transaction, lease.holder, lease.leaseMs, now);
    await lockDigests(transaction, candidates);
    if (engineOf(transaction) === 'postgres') {
      await transaction.selectFrom('blobs').select('digest').where('digest', 'in', candidates).forUpdate().execute();
    }
    const { rows } = await sql<BlobRef>`select b.digest, b.size from blobs b where b.digest in (${sql.join(candidates)}) and ${blobIsGarbage(cutoff, null)}`.execute(transaction);
    const confirmed = rows.map((row) => ({ digest: row.digest, size: Number(row.size) }));
    if (confirmed.length === 0) return [];
    const digests = confirmed.map((blob) => blob.digest);
    await transaction.deleteFrom('repository_blobs').where('digest', 'in', digests).execute();
    await transaction.deleteFrom('blobs').where('digest', 'in', digests).execute();
    await addPending(transaction, digests.map((digest) => ({ key: bytesKeyOf(digest), digest })), now);
    return confirmed;
  });
}

/**
 * Claims bytes no row names for deletion: those of the digests that still have no blob row and no
 * write in progress, re-checked in this transaction.
 *
 * Race closed: an upload (a mirror fetch, an import) whose bytes have just landed in blobs/ and whose
 * rows are not written yet: it claimed the digest in blob_writes before writing.
 */
export async function claimUnrecordedBytes(
  db: MetadataDb,
  digests: string[],
  lease: { holder: string; leaseMs: number },
  bytesKeyOf: (digest: string) => string,
  now: number,
): Promise<string[]> {
  if (digests.length === 0) return [];
  return db.transaction().execute(async (transaction) => {
    await beginDeleting(transaction, lease.holder, lease.leaseMs, now);
    await lockDigests(transaction, digests);
    const confirmed = await findUnrecordedDigests(transaction, digests);
    await addPending(transaction, confirmed.map((digest) => ({ key: bytesKeyOf(digest), digest })), now);
    return confirmed;
  });
}

/** Records keys to remove once the transaction deleting their rows commits (a digest: bytes of it a writer must wait for). */
export async function addPending(db: MetadataExecutor, entries: Array<{ key: string; digest: string | null }>, now: number): Promise<void> {
  if (entries.length === 0) return;
  await db
    .insertInto('gc_pending')
    .values(entries.map((entry) => ({ key: entry.key, digest: entry.digest, created_at: now })))
    .onConflict((conflict) => conflict.column('key').doNothing())
    .execute();
}

export interface PendingDeletion {
  key: string;
  digest: string | null;
}

/** Storage keys whose rows are gone, oldest first (a run that died left them, or this one just added them). */
export async function listPending(db: MetadataExecutor, limit: number): Promise<PendingDeletion[]> {
  return db.selectFrom('gc_pending').select(['key', 'digest']).orderBy('created_at').orderBy('key').limit(limit).execute();
}

export async function deletePending(db: MetadataExecutor, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await db.deleteFrom('gc_pending').where('key', 'in', keys).execute();
}

/**
 * Removes the object under a pending key, then its pending row, unless a writer took the key back
 * meanwhile (see takeBackPendingKey). Used for the links a user's delete leaves pending: the tag
 * and manifest links go only once the rows that named them are gone (rows first, bytes second).
 *
 * Race closed: a delete's link removal running after the commit while a push of the same tag
 * writes the link again. The removal deletes the pending row first and keeps it locked until it
 * commits (PostgreSQL: the row lock; SQLite: the one writer lock), and removes the object only if
 * the row was still there; the push takes the row back in its own transaction before it writes the
 * link, so it either waits for the removal to finish or makes the removal find nothing to do.
 */
export async function finishPendingKey(db: MetadataDb, key: string, remove: () => Promise<void>): Promise<boolean> {
  return db.transaction().execute(async (transaction) => {
    const pending = await transaction.deleteFrom('gc_pending').where('key', '=', key).returning('key').executeTakeFirst();
    if (pending) await remove();
    return pending !== undefined;
  });
}

/** A writer about to write `key` again: a removal of it still pending is called off (see finishPendingKey). */
export async function takeBackPendingKey(db: MetadataExecutor, key: string): Promise<void> {
  await db.deleteFrom('gc_pending').where('key', '=', key).execute();
}

/** Whether the digest's bytes are about to be deleted (an upload of it must wait). */
export async function isPendingDeletion(db: MetadataExecutor, digest: string): Promise<boolean> {
  return (await db.selectFrom('gc_pending').select('key').where('digest', '=', digest).executeTakeFirst()) !== undefined;
}

/** Forgets a digest's pending deletion left by a run that is no longer alive (the bytes are overwritten next). */
export async function forgetStalePending(db: MetadataExecutor, digest: string): Promise<void> {
  await db.deleteFrom('gc_pending').where('digest', '=', digest).execute();
}

// --- runs and their reports ---------------------------------------------------------------------

export interface GcRunRow {
  id: number;
  state: 'running' | 'succeeded' | 'failed';
  dryRun: boolean;
  holder: string;
  startedAt: number;
  finishedAt: number | null;
  report: unknown;
}

export async function insertGcRun(db: MetadataExecutor, run: { dryRun: boolean; holder: string }, now: number): Promise<number> {
  await db.insertInto('gc_runs').values({ state: 'running', dry_run: run.dryRun ? 1 : 0, holder: run.holder, started_at: now, finished_at: null, report: null }).execute();
  const row = await db.selectFrom('gc_runs').select('id').where('holder', '=', run.holder).where('started_at', '=', now).orderBy('id', 'desc').executeTakeFirstOrThrow();
  return Number(row.id);
}

export async function finishGcRun(db: MetadataExecutor, id: number, state: 'succeeded' | 'failed', report: unknown, now: number): Promise<void> {
  await db.updateTable('gc_runs').set({ state, finished_at: now, report: JSON.stringify(report) }).where('id', '=', id).execute();
}

/** Runs still marked running whose process is gone (the lease was free when a new run took it): failed. */
export async function failInterruptedRuns(db: MetadataExecutor, exceptHolder: string, now: number): Promise<void> {
  await db
    .updateTable('gc_runs')
    .set({ state: 'failed', finished_at: now, report: JSON.stringify({ error: 'interrupted: the run ended without finishing (its process stopped)' }) })
    .where('state', '=', 'running')
    .where('holder', '!=', exceptHolder)
    .execute();
}

function toRun(row: { id: number; state: GcRunRow['state']; dry_run: number; holder: string; started_at: number; finished_at: number | null; report: string | null }): GcRunRow {
  return {
    id: Number(row.id),
    state: row.state,
    dryRun: Number(row.dry_run) === 1,
    holder: row.holder,
    startedAt: Number(row.started_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
    report: row.report === null ? null : (JSON.parse(row.report) as unknown),
  };
}

export async function listGcRuns(db: MetadataExecutor, limit: number): Promise<GcRunRow[]> {
  const rows = await db.selectFrom('gc_runs').selectAll().orderBy('id', 'desc').limit(limit).execute();
  return rows.map(toRun);
}

export async function findGcRun(db: MetadataExecutor, id: number): Promise<GcRunRow | undefined> {
  const row = await db.selectFrom('gc_runs').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toRun(row) : undefined;
}

// --- writers of bytes: claiming a digest whose old bytes a run may be deleting --------------------

/**
 * PostgreSQL: serialises, per digest, a run's deleting transaction with a writer's claim of the same
 * digest (a transaction-scoped advisory lock; other digests that hash alike only wait a little).
 * SQLite serialises every writer already.
 */
export async function lockDigests(db: MetadataExecutor, digests: string[]): Promise<void> {
  if (engineOf(db) !== 'postgres' || digests.length === 0) return;
  // One statement, in digest order, so two transactions locking overlapping sets cannot deadlock.
  await sql`select pg_advisory_xact_lock(hashtext(d)) from unnest(${[...new Set(digests)].sort()}::text[]) as d order by d`.execute(db);
}

/**
 * Claims a write of `digest`'s bytes into blobs/ (to be released once its rows are written), unless a
 * run is deleting that digest's old bytes right now: then 'wait'. A pending deletion left by a run
 * that is no longer alive is forgotten (the write replaces whatever bytes are still there).
 *
 * Race closed (an upload, mirror fetch or import of a digest finishing while a run deletes the same
 * digest): without the claim, the writer would find the old bytes (or write new ones) and write rows
 * naming bytes that are about to go. The claim is written first (SQLite: so the writer lock is taken
 * before the check) and, on PostgreSQL, under the digest's advisory lock that the run's deleting
 * transaction takes too; the run re-checks for claims after taking it.
 */
export async function claimBlobWrite(db: MetadataDb, writeId: string, digest: string, now: number): Promise<'claimed' | 'wait'> {
  const waiting = new Error('wait');
  try {
    await db.transaction().execute(async (transaction) => {
      await transaction.insertInto('blob_writes').values({ id: writeId, digest, started_at: now }).onConflict((conflict) => conflict.column('id').doNothing()).execute();
      await lockDigests(transaction, [digest]);
      if (!(await isPendingDeletion(transaction, digest))) return;
      if (await currentGcHolder(transaction, now)) throw waiting;
      await forgetStalePending(transaction, digest);
    });
    return 'claimed';
  } catch (error) {
    if (error === waiting) return 'wait';
    throw error;
  }
}

/** Ends a write's claim: its rows are written (or it failed and wrote none). */
export async function releaseBlobWrite(db: MetadataExecutor, writeId: string): Promise<void> {
  await db.deleteFrom('blob_writes').where('id', '=', writeId).execute();
}

/** Claims left by writers whose process died long ago: they no longer keep their digest. */
export async function expireBlobWrites(db: MetadataExecutor, now: number): Promise<number> {
  const result = await db.deleteFrom('blob_writes').where('started_at', '<', now - blobWriteExpiryMs).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Real (not dry) garbage collection runs by state, as recorded by every replica. */
export async function countGcRunsByState(db: MetadataExecutor): Promise<Array<{ state: string; count: number }>> {
  const rows = await db.selectFrom('gc_runs').select(['state', (eb) => eb.fn.countAll<number | string>().as('count')]).where('dry_run', '=', 0).groupBy('state').execute();
  return rows.map((row) => ({ state: row.state, count: Number(row.count) }));
}

/** The report (JSON) of the last real run that succeeded; undefined before any. */
export async function lastSucceededGcReport(db: MetadataExecutor): Promise<string | undefined> {
  const last = await db.selectFrom('gc_runs').select(['report']).where('dry_run', '=', 0).where('state', '=', 'succeeded').orderBy('id', 'desc').limit(1).executeTakeFirst();
  return last?.report ?? undefined;
}
