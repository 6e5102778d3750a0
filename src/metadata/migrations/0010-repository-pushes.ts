import { sql, type Kysely } from 'kysely';
import type { MetadataEngine } from '../engine.js';

/**
 * The last push of each repository (when and by whom), for the web UI's repository list sorted by
 * last push, paged by (pushed_at, name) at any number of repositories. It is kept by a trigger on the
 * audit log, so every writer (a replica, `import`, a restore) moves it in the transaction that moves
 * the tag: a tag set by a push (`created`, `moved`) or a restore. Mirrored tags (upstream set) are
 * not pushes. Existing repositories start from their last such event.
 */
const pushActions = sql`('created', 'moved', 'restored')`;

export async function up(db: Kysely<unknown>, engine: MetadataEngine): Promise<void> {
  await db.schema.alterTable('repositories').addColumn('pushed_at', 'bigint').execute();
  await db.schema.alterTable('repositories').addColumn('pushed_by', 'varchar(255)').execute();
  await db.schema.createIndex('repositories_pushed').on('repositories').columns(['pushed_at', 'name']).execute();
  await sql`
    update repositories set
      pushed_at = (select e.at from audit_events e where e.repository = repositories.name and e.upstream is null and e.target = 'tag' and e.action in ${pushActions} order by e.id desc limit 1),
      pushed_by = (select e.actor from audit_events e where e.repository = repositories.name and e.upstream is null and e.target = 'tag' and e.action in ${pushActions} order by e.id desc limit 1)`.execute(db);
  const condition = sql`new.target = 'tag' and new.upstream is null and new.action in ${pushActions}`;
  const update = sql`update repositories set pushed_at = new.at, pushed_by = new.actor where name = new.repository`;
  if (engine === 'sqlite') {
    await sql`create trigger repositories_pushed after insert on audit_events when ${condition} begin ${update}; end`.execute(db);
    return;
  }
  await sql`
    create function registry_repository_pushed() returns trigger language plpgsql as $$
    begin
      ${update};
      return null;
    end
    $$`.execute(db);
  await sql`create trigger repositories_pushed after insert on audit_events for each row when (${condition}) execute function registry_repository_pushed()`.execute(db);
}
