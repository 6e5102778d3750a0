import { sql, type Kysely } from 'kysely';

/**
 * Accounts kept in the database (beside the policy and htpasswd files), managed over HTTP and on the
 * command line:
 * - `accounts`: a name, its password's bcrypt hash, whether it is a system admin and whether it is
 *   disabled;
 * - `directory_version`: one row counted up in every transaction that changes an account (and, as
 *   they come, projects, members and robots), which each replica reads to know its copy is stale.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('name', 'varchar(255)', (column) => column.primaryKey())
    .addColumn('password_hash', 'varchar(100)', (column) => column.notNull())
    .addColumn('admin', 'smallint', (column) => column.notNull())
    .addColumn('disabled', 'smallint', (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addColumn('updated_at', 'bigint', (column) => column.notNull())
    .execute();
  await db.schema
    .createTable('directory_version')
    .addColumn('name', 'varchar(32)', (column) => column.primaryKey())
    .addColumn('value', 'bigint', (column) => column.notNull())
    .execute();
  await sql`insert into directory_version (name, value) values ('directory', 0)`.execute(db);
}
