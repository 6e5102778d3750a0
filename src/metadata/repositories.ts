import type { MetadataExecutor } from './database.js';

export interface RepositoryRow {
  id: number;
  name: string;
}

export async function findRepository(db: MetadataExecutor, name: string): Promise<RepositoryRow | undefined> {
  return db.selectFrom('repositories').select(['id', 'name']).where('name', '=', name).executeTakeFirst();
}

/** The repository's row, created on first use. Safe under concurrent callers. */
export async function ensureRepository(db: MetadataExecutor, name: string, now = Date.now()): Promise<RepositoryRow> {
  await db
    .insertInto('repositories')
    .values({ name, created_at: now })
    .onConflict((conflict) => conflict.column('name').doNothing())
    .execute();
  return db.selectFrom('repositories').select(['id', 'name']).where('name', '=', name).executeTakeFirstOrThrow();
}
