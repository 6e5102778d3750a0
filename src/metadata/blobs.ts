import type { MetadataExecutor } from './database.js';

export interface BlobRow {
  digest: string;
  size: number;
}

/** Records a blob whose bytes are already verified in storage; an existing row only counts as used now. */
export async function insertBlob(db: MetadataExecutor, blob: BlobRow, now: number): Promise<void> {
  await db
    .insertInto('blobs')
    .values({ digest: blob.digest, size: blob.size, created_at: now, used_at: now })
    .onConflict((conflict) => conflict.column('digest').doUpdateSet({ used_at: now }))
    .execute();
}

export async function findBlob(db: MetadataExecutor, digest: string): Promise<BlobRow | undefined> {
  return db.selectFrom('blobs').select(['digest', 'size']).where('digest', '=', digest).executeTakeFirst();
}

export async function linkBlob(db: MetadataExecutor, repositoryId: number, digest: string, now: number): Promise<void> {
  await db
    .insertInto('repository_blobs')
    .values({ repository_id: repositoryId, digest, created_at: now })
    .onConflict((conflict) => conflict.columns(['repository_id', 'digest']).doNothing())
    .execute();
}

/** The blob if it is linked to the named repository. */
export async function findLinkedBlob(db: MetadataExecutor, repositoryName: string, digest: string): Promise<BlobRow | undefined> {
  return db
    .selectFrom('repository_blobs')
    .innerJoin('repositories', 'repositories.id', 'repository_blobs.repository_id')
    .innerJoin('blobs', 'blobs.digest', 'repository_blobs.digest')
    .select(['blobs.digest', 'blobs.size'])
    .where('repositories.name', '=', repositoryName)
    .where('repository_blobs.digest', '=', digest)
    .executeTakeFirst();
}

/** Removes a blob's link to a repository; the bytes stay for garbage collection. */
export async function unlinkBlob(db: MetadataExecutor, repositoryId: number, digest: string): Promise<boolean> {
  const result = await db
    .deleteFrom('repository_blobs')
    .where('repository_id', '=', repositoryId)
    .where('digest', '=', digest)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Those of the given digests that are linked to the repository. */
/** The sizes of those of the digests that are linked into the repository. */
export async function findLinkedBlobSizes(db: MetadataExecutor, repositoryId: number, digests: string[]): Promise<Map<string, number>> {
  if (digests.length === 0) return new Map();
  const rows = await db
    .selectFrom('repository_blobs')
    .innerJoin('blobs', 'blobs.digest', 'repository_blobs.digest')
    .select(['blobs.digest', 'blobs.size'])
    .where('repository_blobs.repository_id', '=', repositoryId)
    .where('repository_blobs.digest', 'in', digests)
    .execute();
  return new Map(rows.map((row) => [row.digest, row.size]));
}
