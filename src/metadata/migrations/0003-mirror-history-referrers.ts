import type { Kysely } from 'kysely';
import type { MetadataEngine } from '../engine.js';
import { byteOrderedText, identityColumn } from './column-types.js';

/**
 * What each mirrored tag pointed at over time, as seen upstream: first seen, moved, gone. Written in
 * the transaction that changes `mirror_tags`, so the history and the cache never disagree.
 * And the upstream's referrers list of a digest (signatures, SBOMs…), cached like a tag: its
 * descriptors as the upstream answered them, and when they were last asked for.
 */
export async function up(db: Kysely<unknown>, engine: MetadataEngine): Promise<void> {
  await db.schema
    .createTable('mirror_tag_history')
    .addColumn('id', identityColumn(engine), (column) => column.primaryKey())
    .addColumn('upstream', 'varchar(255)', (column) => column.notNull())
    .addColumn('repository', byteOrderedText(engine, 255), (column) => column.notNull())
    .addColumn('tag', byteOrderedText(engine, 128), (column) => column.notNull())
    .addColumn('from_digest', 'varchar(200)')
    .addColumn('to_digest', 'varchar(200)')
    .addColumn('at', 'bigint', (column) => column.notNull())
    .execute();
  await db.schema.createIndex('mirror_tag_history_tag').on('mirror_tag_history').columns(['upstream', 'repository', 'tag', 'id']).execute();

  await db.schema
    .createTable('mirror_referrers')
    .addColumn('upstream', 'varchar(255)', (column) => column.notNull())
    .addColumn('repository', byteOrderedText(engine, 255), (column) => column.notNull())
    .addColumn('subject', 'varchar(200)', (column) => column.notNull())
    .addColumn('descriptors', 'text', (column) => column.notNull())
    .addColumn('checked_at', 'bigint', (column) => column.notNull())
    .addPrimaryKeyConstraint('mirror_referrers_pk', ['upstream', 'repository', 'subject'])
    .execute();
}
