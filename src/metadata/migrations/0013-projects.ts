import type { Kysely } from 'kysely';

/**
 * Projects, the first path component of repository names (`team-a/api` → `team-a`; one-component
 * names belong to `library`), and their members with a role each. A change of either counts the
 * directory's version up (migration 0012), as a change of an account does.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('projects')
    .addColumn('name', 'varchar(255)', (column) => column.primaryKey())
    .addColumn('public', 'smallint', (column) => column.notNull())
    .addColumn('quota_storage', 'bigint')
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addColumn('updated_at', 'bigint', (column) => column.notNull())
    .execute();
  await db.schema
    .createTable('project_members')
    .addColumn('project', 'varchar(255)', (column) => column.notNull().references('projects.name').onDelete('cascade'))
    .addColumn('account', 'varchar(255)', (column) => column.notNull())
    .addColumn('role', 'varchar(16)', (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addPrimaryKeyConstraint('project_members_pk', ['project', 'account'])
    .execute();
  await db.schema.createIndex('project_members_account').on('project_members').column('account').execute();
}
