import { sql, type Kysely } from 'kysely';
import type { MetadataEngine } from '../engine.js';

/**
 * A signal for every change of what a tag names, whoever makes it (this process, another replica,
 * an `import` or `gc` command beside the server), so that a replica may keep answers by tag in
 * memory (see tag-changes.ts):
 * - SQLite: `change_counters` row `tags`, counted up by triggers in the changing transaction;
 * - PostgreSQL: a NOTIFY on `registry_tags_changed`, delivered to listeners when that transaction commits.
 * Pull times (`last_pulled_at`) are not a change: the update triggers watch `manifest_id` only.
 */
export async function up(db: Kysely<unknown>, engine: MetadataEngine): Promise<void> {
  if (engine === 'sqlite') {
    await db.schema
      .createTable('change_counters')
      .addColumn('name', 'varchar(64)', (column) => column.primaryKey())
      .addColumn('value', 'bigint', (column) => column.notNull())
      .execute();
    await sql`insert into change_counters (name, value) values ('tags', 0)`.execute(db);
    for (const [name, event] of [
      ['tags_changed_insert', sql`insert`],
      ['tags_changed_update', sql`update of manifest_id`],
      ['tags_changed_delete', sql`delete`],
    ] as const) {
      await sql`create trigger ${sql.raw(name)} after ${event} on tags begin update change_counters set value = value + 1 where name = 'tags'; end`.execute(db);
    }
    return;
  }
  await sql`
    create function registry_tags_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('registry_tags_changed', '');
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger tags_changed after insert or delete or update of manifest_id on tags
    for each statement execute function registry_tags_changed()`.execute(db);
}
