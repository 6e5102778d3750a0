import { sql, type Kysely } from 'kysely';

/**
 * Why a mirrored tag changed: `seen` (first seen upstream), `moved`, `gone` (upstream no longer has
 * it), or `imported` (from a bundle carried in, at an offline site). Rows written before this
 * migration are given the action their digests imply.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mirror_tag_history').addColumn('action', 'varchar(16)', (column) => column.notNull().defaultTo('moved')).execute();
  await sql`update mirror_tag_history set action = 'seen' where from_digest is null`.execute(db);
  await sql`update mirror_tag_history set action = 'gone' where to_digest is null`.execute(db);
}
