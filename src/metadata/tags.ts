import { engineOf, type MetadataExecutor } from './database.js';

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

/**
 * The digest a tag points at, its row locked until the transaction ends (PostgreSQL; on SQLite the
 * transaction holds the writer lock already), so the caller's change and its audit event see the
 * value no other writer can change before the commit.
 */
export async function lockTag(db: MetadataExecutor, repositoryId: number, name: string): Promise<{ manifestId: number; digest: string } | undefined> {
  let select = db.selectFrom('tags').select('manifest_id').where('repository_id', '=', repositoryId).where('name', '=', name);
  if (engineOf(db) === 'postgres') select = select.forUpdate();
  const row = await select.executeTakeFirst();
  if (!row) return undefined;
  const manifest = await db.selectFrom('manifests').select('digest').where('id', '=', row.manifest_id).executeTakeFirstOrThrow();
  return { manifestId: row.manifest_id, digest: manifest.digest };
}

/**
 * Points a tag at a manifest in the caller's transaction; answers the digest it pointed at before
 * (null: created). Race closed (two replicas creating one tag at once): the loser's insert waits for
 * the winner's commit, finds the row, and re-reads it locked, so its event says moved from the
 * winner's digest rather than created.
 */
export async function moveTag(db: MetadataExecutor, repositoryId: number, name: string, manifestId: number, now: number): Promise<{ previous: string | null }> {
  let before = await lockTag(db, repositoryId, name);
  if (!before) {
    const inserted = await db
      .insertInto('tags')
      .values({ repository_id: repositoryId, name, manifest_id: manifestId, created_at: now, updated_at: now })
      .onConflict((conflict) => conflict.columns(['repository_id', 'name']).doNothing())
      .executeTakeFirst();
    if ((inserted.numInsertedOrUpdatedRows ?? 0n) > 0n) return { previous: null };
    before = await lockTag(db, repositoryId, name);
    if (!before) throw new Error(`tag ${name} vanished while being written`);
  }
  // Pushed again (the same digest too): its pushed time is now, which retention's pushedWithin reads.
  await db.updateTable('tags').set({ manifest_id: manifestId, updated_at: now }).where('repository_id', '=', repositoryId).where('name', '=', name).execute();
  return { previous: before.digest };
}

/** Deletes a tag in the caller's transaction; answers the digest it pointed at, or undefined when there was no such tag. */
export async function deleteTag(db: MetadataExecutor, repositoryId: number, name: string): Promise<string | undefined> {
  const before = await lockTag(db, repositoryId, name);
  if (!before) return undefined;
  await db.deleteFrom('tags').where('repository_id', '=', repositoryId).where('name', '=', name).execute();
  return before.digest;
}

/** Records the last pull of tags (audit.pulls), never moving a time back. */
export async function markTagsPulled(db: MetadataExecutor, repositoryId: number, names: string[], at: number): Promise<void> {
  if (names.length === 0) return;
  await db
    .updateTable('tags')
    .set({ pulled_at: at })
    .where('repository_id', '=', repositoryId)
    .where('name', 'in', names)
    .where((eb) => eb.or([eb('pulled_at', 'is', null), eb('pulled_at', '<', at)]))
    .execute();
}

/** Up to `limit` names of the repository's tags that point at the digest. */
export async function tagsNaming(db: MetadataExecutor, repositoryId: number, digest: string, limit: number): Promise<string[]> {
  const rows = await db
    .selectFrom('tags')
    .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
    .select('tags.name')
    .where('tags.repository_id', '=', repositoryId)
    .where('manifests.digest', '=', digest)
    .orderBy('tags.name')
    .limit(limit)
    .execute();
  return rows.map((row) => row.name);
}

/** Up to `limit` tag names after `last`, in byte order. */
export async function listTags(db: MetadataExecutor, repositoryId: number, limit: number, last?: string): Promise<string[]> {
  let query = db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId);
  if (last !== undefined) query = query.where('name', '>', last);
  const rows = await query.orderBy('name').limit(limit).execute();
  return rows.map((row) => row.name);
}

export interface TagTimes {
  name: string;
  digest: string;
  /** The last push (ms). */
  pushedAt: number;
  /** The last pull by tag (ms), when pulls are recorded. */
  pulledAt: number | null;
}

/** Every tag of a repository with its digest and its last push and pull: what retention decides on. */
export async function listTagTimes(db: MetadataExecutor, repositoryId: number): Promise<TagTimes[]> {
  const rows = await db
    .selectFrom('tags')
    .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
    .select(['tags.name', 'manifests.digest', 'tags.updated_at', 'tags.pulled_at'])
    .where('tags.repository_id', '=', repositoryId)
    .orderBy('tags.name')
    .execute();
  return rows.map((row) => ({ name: row.name, digest: row.digest, pushedAt: Number(row.updated_at), pulledAt: row.pulled_at === null ? null : Number(row.pulled_at) }));
}

/**
 * Deletes a tag in the caller's transaction only if it still points at the digest and was last
 * pushed when the caller saw it. Race closed: a retention run deciding on a tag that a client pushes
 * again meanwhile (a fresh push is never deleted by a decision taken before it).
 */
export async function deleteTagIfUnchanged(db: MetadataExecutor, repositoryId: number, name: string, seen: { digest: string; pushedAt: number }): Promise<boolean> {
  const before = await lockTag(db, repositoryId, name);
  if (!before || before.digest !== seen.digest) return false;
  const result = await db.deleteFrom('tags').where('repository_id', '=', repositoryId).where('name', '=', name).where('updated_at', '=', seen.pushedAt).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
