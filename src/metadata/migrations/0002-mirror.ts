import type { Kysely } from 'kysely';
import type { MetadataEngine } from '../engine.js';
import { byteOrderedText } from './column-types.js';

/**
 * The pull-through cache: what was fetched from which upstream repository. Kept apart from the local
 * repositories, so cached and pushed content never mix; blob bytes are shared through `blobs`.
 */
export async function up(db: Kysely<unknown>, engine: MetadataEngine): Promise<void> {
  const bytes = engine === 'postgres' ? 'bytea' : 'blob';

  await db.schema
    .createTable('mirror_manifests')
    .addColumn('upstream', 'varchar(255)', (column) => column.notNull())
    .addColumn('repository', byteOrderedText(engine, 255), (column) => column.notNull())
    .addColumn('digest', 'varchar(200)', (column) => column.notNull())
    .addColumn('media_type', 'varchar(255)', (column) => column.notNull())
    .addColumn('size', 'bigint', (column) => column.notNull())
    .addColumn('payload', bytes, (column) => column.notNull())
    .addColumn('fetched_at', 'bigint', (column) => column.notNull())
    .addPrimaryKeyConstraint('mirror_manifests_pk', ['upstream', 'repository', 'digest'])
    .execute();

  await db.schema
    .createTable('mirror_tags')
    .addColumn('upstream', 'varchar(255)', (column) => column.notNull())
    .addColumn('repository', byteOrderedText(engine, 255), (column) => column.notNull())
    .addColumn('tag', byteOrderedText(engine, 128), (column) => column.notNull())
    .addColumn('digest', 'varchar(200)', (column) => column.notNull())
    .addColumn('checked_at', 'bigint', (column) => column.notNull())
    .addColumn('updated_at', 'bigint', (column) => column.notNull())
    .addPrimaryKeyConstraint('mirror_tags_pk', ['upstream', 'repository', 'tag'])
    .execute();

  await db.schema
    .createTable('mirror_blobs')
    .addColumn('upstream', 'varchar(255)', (column) => column.notNull())
    .addColumn('repository', byteOrderedText(engine, 255), (column) => column.notNull())
    .addColumn('digest', 'varchar(200)', (column) => column.notNull().references('blobs.digest'))
    .addColumn('fetched_at', 'bigint', (column) => column.notNull())
    .addPrimaryKeyConstraint('mirror_blobs_pk', ['upstream', 'repository', 'digest'])
    .execute();
  await db.schema.createIndex('mirror_blobs_digest').on('mirror_blobs').column('digest').execute();
}
