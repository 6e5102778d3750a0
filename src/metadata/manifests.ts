import type { Selectable } from 'kysely';
import { reuseCompiledSql, type MetadataExecutor } from './database.js';
import type { ManifestsTable } from './schema.js';

export interface ManifestRow {
  id: number;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  subjectDigest: string | null;
  size: number;
  payload: Uint8Array;
}

export interface NewManifest {
  repositoryId: number;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  subjectDigest: string | null;
  payload: Uint8Array;
  /** Blobs the manifest names that the repository holds (config and layers). */
  blobDigests: string[];
  /** Ids of the child manifests an index names. */
  childIds: number[];
}

const manifestColumns = [
  'manifests.id',
  'manifests.digest',
  'manifests.media_type',
  'manifests.artifact_type',
  'manifests.subject_digest',
  'manifests.size',
  'manifests.payload',
] as const;

type ManifestSelection = Omit<Selectable<ManifestsTable>, 'repository_id' | 'created_at' | 'used_at'>;

function toManifestRow(row: ManifestSelection): ManifestRow {
  return {
    id: row.id,
    digest: row.digest,
    mediaType: row.media_type,
    artifactType: row.artifact_type,
    subjectDigest: row.subject_digest,
    size: row.size,
    payload: row.payload,
  };
}

export async function findManifest(db: MetadataExecutor, repositoryId: number, digest: string): Promise<ManifestRow | undefined> {
  const row = await db
    .selectFrom('manifests')
    .select(manifestColumns)
    .where('manifests.repository_id', '=', repositoryId)
    .where('manifests.digest', '=', digest)
    .executeTakeFirst();
  return row ? toManifestRow(row) : undefined;
}

/** Ids of those of the given manifests that exist in the repository, by digest. */
export async function findManifestIds(db: MetadataExecutor, repositoryId: number, digests: string[]): Promise<Map<string, { id: number; size: number }>> {
  if (digests.length === 0) return new Map();
  const rows = await db
    .selectFrom('manifests')
    .select(['id', 'digest', 'size'])
    .where('repository_id', '=', repositoryId)
    .where('digest', 'in', digests)
    .execute();
  return new Map(rows.map((row) => [row.digest, { id: row.id, size: row.size }]));
}

/** Inserts the manifest and its references; an existing identical manifest is kept. Returns its id. */
export async function insertManifest(db: MetadataExecutor, manifest: NewManifest, now: number): Promise<number> {
  await db
    .insertInto('manifests')
    .values({
      repository_id: manifest.repositoryId,
      digest: manifest.digest,
      media_type: manifest.mediaType,
      artifact_type: manifest.artifactType,
      subject_digest: manifest.subjectDigest,
      size: manifest.payload.length,
      payload: manifest.payload,
      created_at: now,
      used_at: now,
    })
    // Pushed again: it counts as used now (a collection re-checks this before deleting it).
    .onConflict((conflict) => conflict.columns(['repository_id', 'digest']).doUpdateSet({ used_at: now }))
    .execute();
  const { id } = await db
    .selectFrom('manifests')
    .select('id')
    .where('repository_id', '=', manifest.repositoryId)
    .where('digest', '=', manifest.digest)
    .executeTakeFirstOrThrow();
  const blobDigests = [...new Set(manifest.blobDigests)];
  if (blobDigests.length > 0) {
    await db
      .insertInto('manifest_blobs')
      .values(blobDigests.map((digest) => ({ manifest_id: id, digest })))
      .onConflict((conflict) => conflict.columns(['manifest_id', 'digest']).doNothing())
      .execute();
  }
  const childIds = [...new Set(manifest.childIds)];
  if (childIds.length > 0) {
    await db
      .insertInto('manifest_children')
      .values(childIds.map((childId) => ({ parent_id: id, child_id: childId })))
      .onConflict((conflict) => conflict.columns(['parent_id', 'child_id']).doNothing())
      .execute();
  }
  return id;
}

/** Digests of the indexes in the repository that name this manifest as a child. */
export async function findParentDigests(db: MetadataExecutor, manifestId: number): Promise<string[]> {
  const rows = await db
    .selectFrom('manifest_children')
    .innerJoin('manifests', 'manifests.id', 'manifest_children.parent_id')
    .select('manifests.digest')
    .where('manifest_children.child_id', '=', manifestId)
    .execute();
  return rows.map((row) => row.digest);
}

/**
 * Deletes a manifest row with its references and the tags pointing at it; returns those tags' names.
 * Race closed: a tag moved off the manifest meanwhile is not deleted (the delete re-reads the row it
 * waited for) and so not named, which its storage link and its audit event depend on.
 */
export async function deleteManifest(db: MetadataExecutor, manifestId: number): Promise<string[]> {
  const tags = await db.deleteFrom('tags').where('manifest_id', '=', manifestId).returning('name').execute();
  await db.deleteFrom('manifest_blobs').where('manifest_id', '=', manifestId).execute();
  await db.deleteFrom('manifest_children').where('parent_id', '=', manifestId).execute();
  await db.deleteFrom('manifests').where('id', '=', manifestId).execute();
  return tags.map((tag) => tag.name);
}

export interface ReferrerRow {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  payload: Uint8Array;
}

/** Manifests in the repository whose subject is the given digest, optionally of one artifact type. */
export async function findReferrers(
  db: MetadataExecutor,
  repositoryId: number,
  subjectDigest: string,
  artifactType?: string,
): Promise<ReferrerRow[]> {
  let query = db
    .selectFrom('manifests')
    .select(['digest', 'media_type', 'artifact_type', 'size', 'payload'])
    .where('repository_id', '=', repositoryId)
    .where('subject_digest', '=', subjectDigest);
  if (artifactType !== undefined) query = query.where('artifact_type', '=', artifactType);
  const rows = await query.orderBy('created_at').orderBy('digest').execute();
  return rows.map((row) => ({
    digest: row.digest,
    mediaType: row.media_type,
    artifactType: row.artifact_type,
    size: row.size,
    payload: row.payload,
  }));
}

export async function countManifests(db: MetadataExecutor, repositoryId: number): Promise<number> {
  const row = await db
    .selectFrom('manifests')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('repository_id', '=', repositoryId)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** The manifest a tag or digest names in a repository, found by the repository's name in one query. */
export async function findManifestByReference(
  db: MetadataExecutor,
  repositoryName: string,
  reference: { tag: string } | { digest: string },
): Promise<ManifestRow | undefined> {
  // The hot path of every pull: the SQL is compiled once per database and reused with new parameters.
  const compiled =
    'tag' in reference
      ? reuseCompiledSql(db, 'manifestByTag', () => manifestByTagQuery(db, repositoryName, reference.tag).compile(), [repositoryName, reference.tag])
      : reuseCompiledSql(db, 'manifestByDigest', () => manifestByDigestQuery(db, repositoryName, reference.digest).compile(), [
          repositoryName,
          reference.digest,
        ]);
  const { rows } = await db.executeQuery(compiled);
  const row = rows[0];
  return row ? toManifestRow(row) : undefined;
}

function manifestByTagQuery(db: MetadataExecutor, repositoryName: string, tag: string) {
  return db
    .selectFrom('repositories')
    .innerJoin('tags', 'tags.repository_id', 'repositories.id')
    .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
    .select(manifestColumns)
    .where('repositories.name', '=', repositoryName)
    .where('tags.name', '=', tag);
}

function manifestByDigestQuery(db: MetadataExecutor, repositoryName: string, digest: string) {
  return db
    .selectFrom('repositories')
    .innerJoin('manifests', 'manifests.repository_id', 'repositories.id')
    .select(manifestColumns)
    .where('repositories.name', '=', repositoryName)
    .where('manifests.digest', '=', digest);
}

/** Whether the database holds any manifest at all (a rebuild fills an empty one only). */
export async function holdsAnyManifest(db: MetadataExecutor): Promise<boolean> {
  return (await db.selectFrom('manifests').select('id').limit(1).executeTakeFirst()) !== undefined;
}
