import { sql, type Kysely } from 'kysely';
import type { MetadataEngine } from '../engine.js';
import { identityColumn } from './column-types.js';

/**
 * Garbage collection:
 * - `used_at` on blobs and manifests: the last use (a HEAD, a mount, a GET by digest), recorded at
 *   most once a second; the grace window counts from the later of it and `created_at`.
 * - `blob_writes`: bytes being written into blobs/ whose rows are not written yet (an upload being
 *   published, a mirror fetch, an import, a manifest's own bytes): collection keeps those digests.
 * - `gc_pending`: storage keys whose rows are gone, to delete (a run that died finishes them next
 *   time); uploads of a digest with a pending key wait until its bytes are gone.
 * - `gc_lock`: one run at a time, a lease renewed while it runs.
 * - `gc_runs`: each run and its report.
 * - an index for the mark's look-up of manifests by digest alone (a manifest's own bytes).
 */
export async function up(db: Kysely<unknown>, engine: MetadataEngine): Promise<void> {
  await db.schema.alterTable('blobs').addColumn('used_at', 'bigint', (column) => column.notNull().defaultTo(0)).execute();
  await sql`update blobs set used_at = created_at`.execute(db);
  await db.schema.alterTable('manifests').addColumn('used_at', 'bigint', (column) => column.notNull().defaultTo(0)).execute();
  await sql`update manifests set used_at = created_at`.execute(db);
  await db.schema.createIndex('manifests_digest').on('manifests').column('digest').execute();
  await db.schema
    .createTable('blob_writes')
    .addColumn('id', 'varchar(64)', (column) => column.primaryKey())
    .addColumn('digest', 'varchar(200)', (column) => column.notNull())
    .addColumn('started_at', 'bigint', (column) => column.notNull())
    .execute();
  await db.schema.createIndex('blob_writes_digest').on('blob_writes').column('digest').execute();

  await db.schema
    .createTable('gc_pending')
    .addColumn('key', 'varchar(1024)', (column) => column.primaryKey())
    .addColumn('digest', 'varchar(200)')
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .execute();
  await db.schema.createIndex('gc_pending_digest').on('gc_pending').column('digest').execute();

  await db.schema
    .createTable('gc_lock')
    .addColumn('name', 'varchar(32)', (column) => column.primaryKey())
    .addColumn('holder', 'varchar(255)', (column) => column.notNull())
    .addColumn('expires_at', 'bigint', (column) => column.notNull())
    .execute();

  await db.schema
    .createTable('gc_runs')
    .addColumn('id', identityColumn(engine), (column) => column.primaryKey())
    .addColumn('state', 'varchar(16)', (column) => column.notNull())
    .addColumn('dry_run', 'integer', (column) => column.notNull())
    .addColumn('holder', 'varchar(255)', (column) => column.notNull())
    .addColumn('started_at', 'bigint', (column) => column.notNull())
    .addColumn('finished_at', 'bigint')
    .addColumn('report', 'text')
    .execute();
}
