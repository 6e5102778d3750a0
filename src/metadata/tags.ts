import type { MetadataExecutor } from './database.js';

/** The manifest id a tag points at, if the tag exists. */
export async function findTag(db: MetadataExecutor, repositoryId: number, name: string): Promise<{ manifestId: number } | undefined> {
  const row = await db
    .selectFrom('tags')
    .select('manifest_id')
    .where('repository_id', '=', repositoryId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row ? { manifestId: row.manifest_id } : undefined;
}

/** Points a tag at a manifest, creating it if needed; one statement, so concurrent writers cannot collide. */
export async function setTag(db: MetadataExecutor, repositoryId: number, name: string, manifestId: number, now = Date.now()): Promise<void> {
  await db
    .insertInto('tags')
    .values({ repository_id: repositoryId, name, manifest_id: manifestId, created_at: now, updated_at: now })
    .onConflict((conflict) =>
      conflict.columns(['repository_id', 'name']).doUpdateSet({ manifest_id: manifestId, updated_at: now }),
    )
    .execute();
}

export async function deleteTag(db: MetadataExecutor, repositoryId: number, name: string): Promise<boolean> {
  const result = await db.deleteFrom('tags').where('repository_id', '=', repositoryId).where('name', '=', name).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Up to `limit` tag names after `last`, in byte order. */
export async function listTags(db: MetadataExecutor, repositoryId: number, limit: number, last?: string): Promise<string[]> {
  let query = db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId);
  if (last !== undefined) query = query.where('name', '>', last);
  const rows = await query.orderBy('name').limit(limit).execute();
  return rows.map((row) => row.name);
}
