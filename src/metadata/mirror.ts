import type { Descriptor } from '../oci/manifest.js';
import type { MetadataDb, MetadataExecutor } from './database.js';
import { touchedLately } from './gc.js';
import type { MirrorTagAction } from './schema.js';
import { appendAuditEvents, systemOrigin, type AuditOrigin, type NewAuditEvent, type OutboxPayloads } from './audit.js';

/** Which upstream repository cached content came from. */
export interface UpstreamRepository {
  upstream: string;
  repository: string;
}

/** Refreshes from the upstream are the registry's own doing. */
const mirrorOrigin = systemOrigin('mirror');

/** A mirrored tag's change as an audit event: the upstream repository's name, with the upstream named. */
function mirrorTagEvent(from: UpstreamRepository, tag: string, action: MirrorTagAction, previous: string | null, digest: string | null): NewAuditEvent {
  return { target: 'tag', repository: from.repository, tag, upstream: from.upstream, action, from: previous, to: digest, mediaType: null };
}

export interface MirrorManifestRow {
  digest: string;
  mediaType: string;
  size: number;
  payload: Uint8Array;
}

export interface MirrorTagRow {
  digest: string;
  checkedAt: number;
}

export async function findMirrorManifest(db: MetadataExecutor, from: UpstreamRepository, digest: string): Promise<MirrorManifestRow | undefined> {
  const row = await db
    .selectFrom('mirror_manifests')
    .select(['digest', 'media_type', 'size', 'payload'])
    .where('upstream', '=', from.upstream)
    .where('repository', '=', from.repository)
    .where('digest', '=', digest)
    .executeTakeFirst();
  return row ? { digest: row.digest, mediaType: row.media_type, size: Number(row.size), payload: row.payload } : undefined;
}

export async function insertMirrorManifest(db: MetadataExecutor, from: UpstreamRepository, manifest: MirrorManifestRow, now: number): Promise<void> {
  await db
    .insertInto('mirror_manifests')
    .values({ ...from, digest: manifest.digest, media_type: manifest.mediaType, size: manifest.size, payload: manifest.payload, fetched_at: now, used_at: now })
    .onConflict((conflict) => conflict.columns(['upstream', 'repository', 'digest']).doNothing())
    .execute();
}

/** Records that a cached manifest was served (at most once a second): cache eviction goes by it. */
export async function touchMirrorManifest(db: MetadataExecutor, from: UpstreamRepository, digest: string, now: number): Promise<void> {
  if (touchedLately(db, `mirror\0${from.upstream}\0${from.repository}\0${digest}`, now)) return;
  await db
    .updateTable('mirror_manifests')
    .set({ used_at: now })
    .where('upstream', '=', from.upstream)
    .where('repository', '=', from.repository)
    .where('digest', '=', digest)
    .where('used_at', '<', now - 1000)
    .execute();
}

export async function findMirrorTag(db: MetadataExecutor, from: UpstreamRepository, tag: string): Promise<MirrorTagRow | undefined> {
  const row = await db
    .selectFrom('mirror_tags')
    .select(['digest', 'checked_at'])
    .where('upstream', '=', from.upstream)
    .where('repository', '=', from.repository)
    .where('tag', '=', tag)
    .executeTakeFirst();
  return row ? { digest: row.digest, checkedAt: Number(row.checked_at) } : undefined;
}

/**
 * Records the digest upstream answered for a tag, checked now; answers the digest it had before, if
 * any. A new or moved tag also gets a history event: call it inside a transaction.
 */
export async function setMirrorTag(db: MetadataExecutor, from: UpstreamRepository, tag: string, digest: string, now: number, outbox: OutboxPayloads): Promise<string | undefined> {
  const before = await findMirrorTag(db, from, tag);
  if (before?.digest === digest) {
    await db
      .updateTable('mirror_tags')
      .set({ checked_at: now })
      .where('upstream', '=', from.upstream)
      .where('repository', '=', from.repository)
      .where('tag', '=', tag)
      .execute();
    return before.digest;
  }
  await moveMirrorTag(db, from, tag, before?.digest ?? null, digest, { checkedAt: now, at: now, action: before ? 'moved' : 'seen', outbox });
  return before?.digest;
}

async function moveMirrorTag(
  db: MetadataExecutor,
  from: UpstreamRepository,
  tag: string,
  previous: string | null,
  digest: string,
  event: { checkedAt: number; at: number; action: MirrorTagAction; origin?: AuditOrigin; outbox: OutboxPayloads },
): Promise<void> {
  await db
    .insertInto('mirror_tags')
    .values({ ...from, tag, digest, checked_at: event.checkedAt, updated_at: event.at })
    .onConflict((conflict) => conflict.columns(['upstream', 'repository', 'tag']).doUpdateSet({ digest, checked_at: event.checkedAt, updated_at: event.at }))
    .execute();
  await appendAuditEvents(db, [mirrorTagEvent(from, tag, event.action, previous, digest)], event.origin ?? mirrorOrigin, event.at, event.outbox);
}

export type ImportedTagOutcome = 'created' | 'moved' | 'unchanged' | 'kept-newer';

/**
 * A tag carried in from a bundle, as the exporting site saw it upstream at `seenAt`: it moves the
 * cached tag (an `imported` history event) unless the cache saw the tag upstream later than that, so
 * an older bundle imported after a newer one never moves a tag back. Call it inside a transaction.
 */
export async function importMirrorTag(
  db: MetadataExecutor,
  from: UpstreamRepository,
  tag: string,
  digest: string,
  seenAt: number,
  origin: AuditOrigin,
  now: number,
  outbox: OutboxPayloads,
): Promise<ImportedTagOutcome> {
  const before = await findMirrorTag(db, from, tag);
  if (before && before.checkedAt > seenAt && before.digest !== digest) return 'kept-newer';
  if (before?.digest === digest) {
    if (seenAt > before.checkedAt) {
      await db.updateTable('mirror_tags').set({ checked_at: seenAt }).where('upstream', '=', from.upstream).where('repository', '=', from.repository).where('tag', '=', tag).execute();
    }
    return 'unchanged';
  }
  await moveMirrorTag(db, from, tag, before?.digest ?? null, digest, { checkedAt: seenAt, at: now, action: 'imported', origin, outbox });
  return before ? 'moved' : 'created';
}

/** Tags cached from the upstream repository, in byte order. */
export async function listMirrorTags(db: MetadataExecutor, from: UpstreamRepository): Promise<string[]> {
  const rows = await db.selectFrom('mirror_tags').select('tag').where('upstream', '=', from.upstream).where('repository', '=', from.repository).orderBy('tag').execute();
  return rows.map((row) => row.tag);
}

/** Forgets a tag the upstream no longer has, with a history event when it was cached: call it inside a transaction. */
export async function deleteMirrorTag(db: MetadataExecutor, from: UpstreamRepository, tag: string, now: number, outbox: OutboxPayloads): Promise<void> {
  const removed = await db
    .deleteFrom('mirror_tags')
    .where('upstream', '=', from.upstream)
    .where('repository', '=', from.repository)
    .where('tag', '=', tag)
    .returning('digest')
    .executeTakeFirst();
  if (removed) await appendAuditEvents(db, [mirrorTagEvent(from, tag, 'gone', removed.digest, null)], mirrorOrigin, now, outbox);
}

export interface MirrorTagEvent {
  id: number;
  upstream: string;
  repository: string;
  tag: string;
  /** null: the tag was first seen. */
  from: string | null;
  /** null: the upstream no longer has the tag. */
  to: string | null;
  at: number;
  action: MirrorTagAction;
}

export interface MirrorTagHistoryQuery {
  upstream?: string;
  repository?: string;
  tag?: string;
  /** Only events older than this id (the next page). */
  before?: number;
  limit: number;
}

/** Mirrored tag changes, newest first (the mirror's part of the audit log). */
export async function listMirrorTagHistory(db: MetadataExecutor, query: MirrorTagHistoryQuery): Promise<MirrorTagEvent[]> {
  let select = db
    .selectFrom('audit_events')
    .select(['id', 'upstream', 'repository', 'tag', 'from_digest', 'to_digest', 'at', 'action'])
    .where('target', '=', 'tag')
    .where('upstream', 'is not', null);
  if (query.upstream !== undefined) select = select.where('upstream', '=', query.upstream);
  if (query.repository !== undefined) select = select.where('repository', '=', query.repository);
  if (query.tag !== undefined) select = select.where('tag', '=', query.tag);
  if (query.before !== undefined) select = select.where('id', '<', query.before);
  const rows = await select.orderBy('id', 'desc').limit(query.limit).execute();
  return rows.map((row) => ({
    id: Number(row.id),
    upstream: row.upstream ?? '',
    repository: row.repository,
    tag: row.tag ?? '',
    from: row.from_digest,
    to: row.to_digest,
    at: Number(row.at),
    action: row.action as MirrorTagAction,
  }));
}

/** The blob's size if it was fetched from this upstream repository (its bytes verified in storage). */
export async function findMirrorBlob(db: MetadataExecutor, from: UpstreamRepository, digest: string): Promise<{ size: number } | undefined> {
  const row = await db
    .selectFrom('mirror_blobs')
    .innerJoin('blobs', 'blobs.digest', 'mirror_blobs.digest')
    .select('blobs.size')
    .where('mirror_blobs.upstream', '=', from.upstream)
    .where('mirror_blobs.repository', '=', from.repository)
    .where('mirror_blobs.digest', '=', digest)
    .executeTakeFirst();
  return row ? { size: Number(row.size) } : undefined;
}

export async function linkMirrorBlob(db: MetadataExecutor, from: UpstreamRepository, digest: string, now: number): Promise<void> {
  await db
    .insertInto('mirror_blobs')
    .values({ ...from, digest, fetched_at: now })
    .onConflict((conflict) => conflict.columns(['upstream', 'repository', 'digest']).doNothing())
    .execute();
}

export interface MirrorReferrersRow {
  descriptors: Descriptor[];
  checkedAt: number;
}

/** The upstream's referrers of a digest as last asked for, if ever. */
export async function findMirrorReferrers(db: MetadataExecutor, from: UpstreamRepository, subject: string): Promise<MirrorReferrersRow | undefined> {
  const row = await db
    .selectFrom('mirror_referrers')
    .select(['descriptors', 'checked_at'])
    .where('upstream', '=', from.upstream)
    .where('repository', '=', from.repository)
    .where('subject', '=', subject)
    .executeTakeFirst();
  return row ? { descriptors: JSON.parse(row.descriptors) as Descriptor[], checkedAt: Number(row.checked_at) } : undefined;
}

export async function setMirrorReferrers(db: MetadataExecutor, from: UpstreamRepository, subject: string, descriptors: Descriptor[], now: number): Promise<void> {
  const text = JSON.stringify(descriptors);
  await db
    .insertInto('mirror_referrers')
    .values({ ...from, subject, descriptors: text, checked_at: now })
    .onConflict((conflict) => conflict.columns(['upstream', 'repository', 'subject']).doUpdateSet({ descriptors: text, checked_at: now }))
    .execute();
}

export async function deleteMirrorReferrers(db: MetadataExecutor, from: UpstreamRepository, subject: string): Promise<void> {
  await db.deleteFrom('mirror_referrers').where('upstream', '=', from.upstream).where('repository', '=', from.repository).where('subject', '=', subject).execute();
}

export interface CachedTagRow extends UpstreamRepository {
  tag: string;
  digest: string;
  checkedAt: number;
}

/** Every tag cached from an upstream, by repository and tag (byte order). */
export async function listCachedTags(db: MetadataExecutor, upstream: string): Promise<CachedTagRow[]> {
  const rows = await db
    .selectFrom('mirror_tags')
    .select(['upstream', 'repository', 'tag', 'digest', 'checked_at'])
    .where('upstream', '=', upstream)
    .orderBy('repository')
    .orderBy('tag')
    .execute();
  return rows.map((row) => ({ upstream: row.upstream, repository: row.repository, tag: row.tag, digest: row.digest, checkedAt: Number(row.checked_at) }));
}

/** Every manifest cached from an upstream: its repository, digest and media type. */
export async function listCachedManifests(db: MetadataExecutor, upstream: string): Promise<Array<UpstreamRepository & { digest: string; mediaType: string }>> {
  const rows = await db
    .selectFrom('mirror_manifests')
    .select(['upstream', 'repository', 'digest', 'media_type'])
    .where('upstream', '=', upstream)
    .orderBy('repository')
    .orderBy('digest')
    .execute();
  return rows.map((row) => ({ upstream: row.upstream, repository: row.repository, digest: row.digest, mediaType: row.media_type }));
}

/** The upstreams whose cache holds a repository of this name (tags or manifests). */
export async function findUpstreamsCaching(db: MetadataExecutor, repository: string): Promise<string[]> {
  const rows = await db.selectFrom('mirror_manifests').select('upstream').distinct().where('repository', '=', repository).orderBy('upstream').execute();
  return rows.map((row) => row.upstream);
}

// --- cache eviction ---------------------------------------------------------------------------

export interface CachedManifestRow extends UpstreamRepository {
  digest: string;
  mediaType: string;
  payload: Uint8Array;
  usedAt: number;
}

/** Every cached manifest (payloads included: eviction reads which blobs and children they name). */
export async function listCachedManifestsWithPayloads(db: MetadataExecutor): Promise<CachedManifestRow[]> {
  const rows = await db.selectFrom('mirror_manifests').select(['upstream', 'repository', 'digest', 'media_type', 'payload', 'used_at']).execute();
  return rows.map((row) => ({ upstream: row.upstream, repository: row.repository, digest: row.digest, mediaType: row.media_type, payload: row.payload, usedAt: Number(row.used_at) }));
}

/** The referrers listed for every cached subject: subject → referrer digests, per upstream repository. */
export async function listCachedReferrers(db: MetadataExecutor): Promise<Array<UpstreamRepository & { subject: string; referrers: string[] }>> {
  const rows = await db.selectFrom('mirror_referrers').select(['upstream', 'repository', 'subject', 'descriptors']).execute();
  return rows.map((row) => ({
    upstream: row.upstream,
    repository: row.repository,
    subject: row.subject,
    referrers: (JSON.parse(row.descriptors) as Descriptor[]).map((descriptor) => descriptor.digest),
  }));
}

/** Cached blobs (each counted once, however many upstream repositories share it) and their sizes. */
export async function listCachedBlobSizes(db: MetadataExecutor): Promise<Map<string, number>> {
  const rows = await db.selectFrom('mirror_blobs').innerJoin('blobs', 'blobs.digest', 'mirror_blobs.digest').select(['blobs.digest', 'blobs.size']).distinct().execute();
  return new Map(rows.map((row) => [row.digest, Number(row.size)]));
}

/**
 * Evicts cached manifests of one upstream repository, unless one of them was served since
 * `usedBefore` (re-checked here: a pull just now keeps the image). Their tags go (an `evicted`
 * history event each), their referrer lists, and the links of cached blobs that no manifest left in
 * the repository names (`stillNamed` reads them from the payloads). The bytes are then garbage
 * collection's to free. Answers whether it evicted.
 */
export async function evictCachedManifests(
  db: MetadataDb,
  from: UpstreamRepository,
  digests: string[],
  usedBefore: number,
  stillNamed: (remaining: Array<{ mediaType: string; payload: Uint8Array }>) => Set<string>,
  now: number,
  outbox: OutboxPayloads,
): Promise<boolean> {
  if (digests.length === 0) return false;
  return db.transaction().execute(async (transaction) => {
    const recent = await transaction
      .selectFrom('mirror_manifests')
      .select('digest')
      .where('upstream', '=', from.upstream)
      .where('repository', '=', from.repository)
      .where('digest', 'in', digests)
      .where('used_at', '>=', usedBefore)
      .executeTakeFirst();
    if (recent) return false;
    const tags = await transaction
      .selectFrom('mirror_tags')
      .select(['tag', 'digest'])
      .where('upstream', '=', from.upstream)
      .where('repository', '=', from.repository)
      .where('digest', 'in', digests)
      .execute();
    if (tags.length > 0) {
      await transaction
        .deleteFrom('mirror_tags')
        .where('upstream', '=', from.upstream)
        .where('repository', '=', from.repository)
        .where('tag', 'in', tags.map((tag) => tag.tag))
        .execute();
      await appendAuditEvents(transaction, tags.map((tag) => mirrorTagEvent(from, tag.tag, 'evicted', tag.digest, null)), systemOrigin('gc'), now, outbox);
    }
    await transaction.deleteFrom('mirror_referrers').where('upstream', '=', from.upstream).where('repository', '=', from.repository).where('subject', 'in', digests).execute();
    await transaction.deleteFrom('mirror_manifests').where('upstream', '=', from.upstream).where('repository', '=', from.repository).where('digest', 'in', digests).execute();
    const remaining = await transaction.selectFrom('mirror_manifests').select(['media_type', 'payload']).where('upstream', '=', from.upstream).where('repository', '=', from.repository).execute();
    const named = stillNamed(remaining.map((row) => ({ mediaType: row.media_type, payload: row.payload })));
    const linked = await transaction.selectFrom('mirror_blobs').select('digest').where('upstream', '=', from.upstream).where('repository', '=', from.repository).execute();
    const unlink = linked.map((row) => row.digest).filter((digest) => !named.has(digest));
    for (let start = 0; start < unlink.length; start += 500) {
      await transaction
        .deleteFrom('mirror_blobs')
        .where('upstream', '=', from.upstream)
        .where('repository', '=', from.repository)
        .where('digest', 'in', unlink.slice(start, start + 500))
        .execute();
    }
    return true;
  });
}
