import type { MetadataExecutor } from './database.js';

export interface RepositoryRow {
  id: number;
  name: string;
}

export async function findRepository(db: MetadataExecutor, name: string): Promise<RepositoryRow | undefined> {
  return db.selectFrom('repositories').select(['id', 'name']).where('name', '=', name).executeTakeFirst();
}

/** The repository's row, created on first use. Safe under concurrent callers. */
export async function ensureRepository(db: MetadataExecutor, name: string, now: number): Promise<RepositoryRow> {
  await db
    .insertInto('repositories')
    .values({ name, created_at: now })
    .onConflict((conflict) => conflict.column('name').doNothing())
    .execute();
  return db.selectFrom('repositories').select(['id', 'name']).where('name', '=', name).executeTakeFirstOrThrow();
}

/** Up to `limit` names of repositories holding at least one manifest, after `last`, in byte order. */
export async function listRepositoriesWithManifests(db: MetadataExecutor, limit: number, last?: string): Promise<string[]> {
  let query = db
    .selectFrom('repositories')
    .select('name')
    .where(({ exists, selectFrom }) =>
      exists(selectFrom('manifests').select('manifests.id').whereRef('manifests.repository_id', '=', 'repositories.id')),
    );
  if (last !== undefined) query = query.where('name', '>', last);
  const rows = await query.orderBy('name').limit(limit).execute();
  return rows.map((row) => row.name);
}
