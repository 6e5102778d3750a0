import type { Kysely } from 'kysely';

/**
 * - `uploads.owner`: who opened each upload session (the account, or `address:<ip>` for anonymous
 *   clients), so that open sessions can be counted per account as well as per repository. Sessions
 *   from before have none and count for their repository only.
 * - `readiness_probes`: one row per replica, written by /readyz after a write failed for lack of
 *   space, to see whether writes go through again.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('uploads').addColumn('owner', 'varchar(255)').execute();
  await db.schema.createIndex('uploads_owner_updated').on('uploads').columns(['owner', 'updated_at']).execute();
  await db.schema.createIndex('uploads_repository_updated').on('uploads').columns(['repository_id', 'updated_at']).execute();
  await db.schema
    .createTable('readiness_probes')
    .addColumn('instance', 'varchar(255)', (column) => column.primaryKey())
    .addColumn('written_at', 'bigint', (column) => column.notNull())
    .execute();
}
