import type { Kysely } from 'kysely';

/**
 * Robot accounts of projects: `robot$<project>+<name>`, a bcrypt hash of a secret shown once, the
 * repositories (globs inside the project) and actions it may use, an expiry, and whether it is
 * disabled. A robot goes with its project. A change counts the directory's version up (0012).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('robots')
    .addColumn('name', 'varchar(255)', (column) => column.primaryKey())
    .addColumn('project', 'varchar(255)', (column) => column.notNull().references('projects.name').onDelete('cascade'))
    .addColumn('secret_hash', 'varchar(100)', (column) => column.notNull())
    .addColumn('access', 'text', (column) => column.notNull())
    .addColumn('expires_at', 'bigint')
    .addColumn('disabled', 'smallint', (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addColumn('updated_at', 'bigint', (column) => column.notNull())
    .execute();
  await db.schema.createIndex('robots_project').on('robots').column('project').execute();
}
