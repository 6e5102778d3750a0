import { sql, type Kysely } from 'kysely';

/**
 * Mirror cache eviction: `mirror_manifests.used_at`, the last time a cached manifest was served (at
 * a one-second resolution), so that garbage collection can evict the least recently pulled images
 * (mirror.upstreams.<name>.retention, mirror.cache.maxsize). Existing rows count as used when fetched.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mirror_manifests').addColumn('used_at', 'bigint', (column) => column.notNull().defaultTo(0)).execute();
  await sql`update mirror_manifests set used_at = fetched_at`.execute(db);
}
