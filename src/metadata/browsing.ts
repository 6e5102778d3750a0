import { sql } from 'kysely';
import { tagMovingActions } from './audit.js';
import { engineOf, type MetadataExecutor } from './database.js';

/** What the web UI lists: repositories by name or by last push, and a repository's tags with what they point at. */

export type RepositorySort = 'name' | 'pushed';

export interface RepositoryPage {
  sort: RepositorySort;
  limit: number;
  /** The last row of the previous page: its name, and for `pushed` its push time (null: never pushed). */
  after?: { name: string; pushedAt: number | null };
  /** Only names containing this text. */
  contains?: string;
}

export interface RepositorySummaryRow {
  id: number;
  name: string;
  pushedAt: number | null;
  pushedBy: string | null;
}

/** `%` and `_` match themselves in a LIKE pattern built from user text (names hold `_`). */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, '\\$&');
}

/**
 * A page of repositories holding manifests (as the catalog lists them), by name, or newest push first
 * (ties by name, descending; never pushed after every pushed one, by name). Both orders are keyset
 * pages walked along the `repositories_pushed` index or the name's, so a page costs the same at the
 * 100,000th repository as at the first (an ORDER BY over "pushed_at is null" would sort them all).
 */
export async function listRepositorySummaries(db: MetadataExecutor, page: RepositoryPage): Promise<RepositorySummaryRow[]> {
  const base = () => {
    let query = db
      .selectFrom('repositories')
      .select(['id', 'name', 'pushed_at', 'pushed_by'])
      .where(({ exists, selectFrom }) => exists(selectFrom('manifests').select('manifests.id').whereRef('manifests.repository_id', '=', 'repositories.id')));
    if (page.contains) query = query.where(sql<boolean>`name like ${`%${likeLiteral(page.contains)}%`} escape '\\'`);
    return query;
  };
  const after = page.after;
  let rows: Array<{ id: number; name: string; pushed_at: number | null; pushed_by: string | null }>;
  if (page.sort === 'name') {
    rows = await (after ? base().where('name', '>', after.name) : base()).orderBy('name').limit(page.limit).execute();
  } else {
    rows = [];
    if (!after || after.pushedAt !== null) {
      let pushed = base().where('pushed_at', 'is not', null);
      if (after && after.pushedAt !== null) {
        const pushedAt = after.pushedAt;
        pushed = pushed.where((eb) => eb.or([eb('pushed_at', '<', pushedAt), eb.and([eb('pushed_at', '=', pushedAt), eb('name', '<', after.name)])]));
      }
      rows = await pushed.orderBy('pushed_at', 'desc').orderBy('name', 'desc').limit(page.limit).execute();
    }
    if (rows.length < page.limit) {
      let never = base().where('pushed_at', 'is', null);
      if (after && after.pushedAt === null) never = never.where('name', '>', after.name);
      rows = [...rows, ...(await never.orderBy('name').limit(page.limit - rows.length).execute())];
    }
  }
  return rows.map((row) => ({ id: row.id, name: row.name, pushedAt: row.pushed_at === null ? null : Number(row.pushed_at), pushedBy: row.pushed_by }));
}

export interface RepositoryTotals {
  tags: number;
  /** Manifests and the blobs they name, each distinct digest once. */
  size: number;
}

/** Tag counts and sizes of a page of repositories. */
export async function repositoryTotals(db: MetadataExecutor, repositoryIds: number[]): Promise<Map<number, RepositoryTotals>> {
  const totals = new Map<number, RepositoryTotals>(repositoryIds.map((id) => [id, { tags: 0, size: 0 }]));
  if (repositoryIds.length === 0) return totals;
  const tagCounts = await db
    .selectFrom('tags')
    .select(['repository_id', (eb) => eb.fn.countAll<number>().as('count')])
    .where('repository_id', 'in', repositoryIds)
    .groupBy('repository_id')
    .execute();
  for (const row of tagCounts) totals.get(row.repository_id)!.tags = Number(row.count);
  const manifestSizes = await db
    .selectFrom('manifests')
    .select(['repository_id', (eb) => eb.fn.sum<number>('size').as('size')])
    .where('repository_id', 'in', repositoryIds)
    .groupBy('repository_id')
    .execute();
  for (const row of manifestSizes) totals.get(row.repository_id)!.size += Number(row.size);
  const blobSizes = await db
    .selectFrom((eb) =>
      eb
        .selectFrom('manifests')
        .innerJoin('manifest_blobs', 'manifest_blobs.manifest_id', 'manifests.id')
        .select(['manifests.repository_id', 'manifest_blobs.digest'])
        .distinct()
        .where('manifests.repository_id', 'in', repositoryIds)
        .as('named'),
    )
    .innerJoin('blobs', 'blobs.digest', 'named.digest')
    .select(['named.repository_id', (eb) => eb.fn.sum<number>('blobs.size').as('size')])
    .groupBy('named.repository_id')
    .execute();
  for (const row of blobSizes) totals.get(row.repository_id)!.size += Number(row.size);
  return totals;
}

export interface TagPage {
  limit: number;
  last?: string;
  /** A glob: `*` any run, `?` one character. */
  glob?: string;
}

export interface TagRow {
  name: string;
  manifestId: number;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  manifestSize: number;
  pushedAt: number;
  pushedBy: string | null;
  pulledAt: number | null;
}

/** The tag filter of either engine: SQLite's GLOB is case-sensitive (its LIKE is not); PostgreSQL's LIKE is. */
function tagMatches(db: MetadataExecutor, column: 'tags.name' | 'tags.tag', glob: string) {
  if (engineOf(db) === 'sqlite') return sql<boolean>`${sql.ref(column)} glob ${glob.replace(/\[/g, '[[]')}`;
  const pattern = likeLiteral(glob).replace(/\*/g, '%').replace(/\?/g, '_');
  return sql<boolean>`${sql.ref(column)} like ${pattern} escape '\\'`;
}

/** A page of a repository's tags in byte order, with the manifest each names and who set it last. */
export async function listTagRows(db: MetadataExecutor, repositoryId: number, page: TagPage): Promise<TagRow[]> {
  let query = db
    .selectFrom('tags')
    .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
    .innerJoin('repositories', 'repositories.id', 'tags.repository_id')
    .select([
      'tags.name',
      'tags.manifest_id',
      'manifests.digest',
      'manifests.media_type',
      'manifests.artifact_type',
      'manifests.size',
      'tags.updated_at',
      'tags.pulled_at',
      (eb) =>
        eb
          .selectFrom('audit_events')
          .select('audit_events.actor')
          .whereRef('audit_events.repository', '=', 'repositories.name')
          .whereRef('audit_events.tag', '=', 'tags.name')
          .where('audit_events.upstream', 'is', null)
          .where('audit_events.action', 'in', [...tagMovingActions])
          .orderBy('audit_events.id', 'desc')
          .limit(1)
          .as('pushed_by'),
    ])
    .where('tags.repository_id', '=', repositoryId);
  if (page.last !== undefined) query = query.where('tags.name', '>', page.last);
  if (page.glob) query = query.where(tagMatches(db, 'tags.name', page.glob));
  const rows = await query.orderBy('tags.name').limit(page.limit).execute();
  return rows.map((row) => ({
    name: row.name,
    manifestId: row.manifest_id,
    digest: row.digest,
    mediaType: row.media_type,
    artifactType: row.artifact_type,
    manifestSize: row.size,
    pushedAt: Number(row.updated_at),
    pushedBy: row.pushed_by ?? null,
    pulledAt: row.pulled_at === null ? null : Number(row.pulled_at),
  }));
}

/**
 * What pulling each manifest fetches: its own bytes, the blobs it names and, for an index, its
 * children and their blobs, each distinct digest once.
 */
export async function pulledSizes(db: MetadataExecutor, manifestIds: number[]): Promise<Map<number, number>> {
  const sizes = new Map<number, number>(manifestIds.map((id) => [id, 0]));
  if (manifestIds.length === 0) return sizes;
  const children = await db.selectFrom('manifest_children').select(['parent_id', 'child_id']).where('parent_id', 'in', manifestIds).execute();
  const members = new Map<number, Set<number>>(manifestIds.map((id) => [id, new Set([id])]));
  for (const { parent_id, child_id } of children) members.get(parent_id)!.add(child_id);
  const everyId = [...new Set([...members.values()].flatMap((set) => [...set]))];
  const manifestRows = await db.selectFrom('manifests').select(['id', 'size']).where('id', 'in', everyId).execute();
  const manifestSize = new Map(manifestRows.map((row) => [row.id, row.size]));
  const blobRows = await db
    .selectFrom('manifest_blobs')
    .innerJoin('blobs', 'blobs.digest', 'manifest_blobs.digest')
    .select(['manifest_blobs.manifest_id', 'blobs.digest', 'blobs.size'])
    .where('manifest_blobs.manifest_id', 'in', everyId)
    .execute();
  const blobsOf = new Map<number, Array<{ digest: string; size: number }>>();
  for (const row of blobRows) {
    const list = blobsOf.get(row.manifest_id) ?? [];
    list.push({ digest: row.digest, size: row.size });
    blobsOf.set(row.manifest_id, list);
  }
  for (const [id, set] of members) {
    const seen = new Map<string, number>();
    let total = 0;
    for (const member of set) {
      total += manifestSize.get(member) ?? 0;
      for (const blob of blobsOf.get(member) ?? []) seen.set(blob.digest, blob.size);
    }
    for (const size of seen.values()) total += size;
    sizes.set(id, total);
  }
  return sizes;
}

/** Payloads of the given manifests (indexes, to read their platforms). */
export async function manifestPayloads(db: MetadataExecutor, manifestIds: number[]): Promise<Map<number, Uint8Array>> {
  if (manifestIds.length === 0) return new Map();
  const rows = await db.selectFrom('manifests').select(['id', 'payload']).where('id', 'in', manifestIds).execute();
  return new Map(rows.map((row) => [row.id, row.payload]));
}

/** A repository's last push time, to continue a page sorted by it after that repository; undefined when there is no such repository. */
export async function findPushedAt(db: MetadataExecutor, name: string): Promise<{ pushedAt: number | null } | undefined> {
  const row = await db.selectFrom('repositories').select('pushed_at').where('name', '=', name).executeTakeFirst();
  return row && { pushedAt: row.pushed_at === null ? null : Number(row.pushed_at) };
}

// --- the mirror cache, listed beside local repositories -----------------------------------------

export interface CachedRepositoryRow {
  repository: string;
  /** The last time a tag of it was set in the cache (seen upstream or imported); null without tags. */
  pushedAt: number | null;
}

/**
 * Repositories an upstream's cache holds manifests of, with the last time one of their cached tags
 * changed. By name: a keyset page after `after` (byte order). `displayPrefix` and `contains` filter
 * on the name clients pull by (`<prefix>/<repository>`).
 */
export async function listCachedRepositories(
  db: MetadataExecutor,
  upstream: string,
  page: { displayPrefix?: string; contains?: string; after?: string; only?: string; limit?: number },
): Promise<CachedRepositoryRow[]> {
  let query = db
    .selectFrom('mirror_manifests as m')
    .leftJoin('mirror_tags as t', (join) => join.onRef('t.upstream', '=', 'm.upstream').onRef('t.repository', '=', 'm.repository'))
    .select(['m.repository', (eb) => eb.fn.max('t.updated_at').as('pushed_at')])
    .where('m.upstream', '=', upstream);
  if (page.after !== undefined) query = query.where('m.repository', '>', page.after);
  if (page.only !== undefined) query = query.where('m.repository', '=', page.only);
  if (page.contains) query = query.where(sql<boolean>`(${page.displayPrefix ?? ''} || m.repository) like ${`%${likeLiteral(page.contains)}%`} escape '\\'`);
  query = query.groupBy('m.repository').orderBy('m.repository');
  if (page.limit !== undefined) query = query.limit(page.limit);
  const rows = await query.execute();
  return rows.map((row) => ({ repository: row.repository, pushedAt: row.pushed_at === null || row.pushed_at === undefined ? null : Number(row.pushed_at) }));
}

/** Tag counts and sizes of cached repositories of one upstream: manifests and the blobs linked, each digest once. */
export async function cachedRepositoryTotals(db: MetadataExecutor, upstream: string, repositories: string[]): Promise<Map<string, RepositoryTotals>> {
  const totals = new Map<string, RepositoryTotals>(repositories.map((name) => [name, { tags: 0, size: 0 }]));
  if (repositories.length === 0) return totals;
  const tagCounts = await db
    .selectFrom('mirror_tags')
    .select(['repository', (eb) => eb.fn.countAll<number>().as('count')])
    .where('upstream', '=', upstream)
    .where('repository', 'in', repositories)
    .groupBy('repository')
    .execute();
  for (const row of tagCounts) totals.get(row.repository)!.tags = Number(row.count);
  const manifestSizes = await db
    .selectFrom('mirror_manifests')
    .select(['repository', (eb) => eb.fn.sum<number>('size').as('size')])
    .where('upstream', '=', upstream)
    .where('repository', 'in', repositories)
    .groupBy('repository')
    .execute();
  for (const row of manifestSizes) totals.get(row.repository)!.size += Number(row.size);
  const blobSizes = await db
    .selectFrom('mirror_blobs')
    .innerJoin('blobs', 'blobs.digest', 'mirror_blobs.digest')
    .select(['mirror_blobs.repository', (eb) => eb.fn.sum<number>('blobs.size').as('size')])
    .where('mirror_blobs.upstream', '=', upstream)
    .where('mirror_blobs.repository', 'in', repositories)
    .groupBy('mirror_blobs.repository')
    .execute();
  for (const row of blobSizes) totals.get(row.repository)!.size += Number(row.size);
  return totals;
}

export interface CachedTagListRow {
  name: string;
  digest: string;
  mediaType: string | null;
  manifestSize: number | null;
  /** When the cache set it to this digest. */
  updatedAt: number;
}

/** A page of a cached repository's tags in byte order, with what each points at when the manifest is cached. */
export async function listCachedTagRows(db: MetadataExecutor, from: { upstream: string; repository: string }, page: TagPage): Promise<CachedTagListRow[]> {
  let query = db
    .selectFrom('mirror_tags as tags')
    .leftJoin('mirror_manifests as m', (join) => join.onRef('m.upstream', '=', 'tags.upstream').onRef('m.repository', '=', 'tags.repository').onRef('m.digest', '=', 'tags.digest'))
    .select(['tags.tag as name', 'tags.digest', 'm.media_type', 'm.size', 'tags.updated_at'])
    .where('tags.upstream', '=', from.upstream)
    .where('tags.repository', '=', from.repository);
  if (page.last !== undefined) query = query.where('tags.tag', '>', page.last);
  if (page.glob) query = query.where(tagMatches(db, 'tags.tag', page.glob));
  const rows = await query.orderBy('tags.tag').limit(page.limit).execute();
  return rows.map((row) => ({ name: row.name, digest: row.digest, mediaType: row.media_type ?? null, manifestSize: row.size ?? null, updatedAt: Number(row.updated_at) }));
}
