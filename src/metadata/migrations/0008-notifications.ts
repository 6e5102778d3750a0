import type { Kysely } from 'kysely';

/**
 * The notification (webhook) outbox and each endpoint's delivery state:
 * - `notification_outbox`: one row per notified audit event, under the event's id (so in commit
 *   order), holding the payload as sent; written in the change's transaction.
 * - `notification_endpoints`: per configured endpoint, the id delivered through, counters, the
 *   backoff state, the last success and failure, and the lease of the replica delivering to it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('notification_outbox')
    .addColumn('id', 'bigint', (column) => column.primaryKey())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addColumn('payload', 'text', (column) => column.notNull())
    .execute();
  await db.schema.createIndex('notification_outbox_created').on('notification_outbox').column('created_at').execute();
  await db.schema
    .createTable('notification_endpoints')
    .addColumn('name', 'varchar(255)', (column) => column.primaryKey())
    .addColumn('delivered_through', 'bigint', (column) => column.notNull())
    .addColumn('delivered', 'bigint', (column) => column.notNull().defaultTo(0))
    .addColumn('ignored', 'bigint', (column) => column.notNull().defaultTo(0))
    .addColumn('failed', 'bigint', (column) => column.notNull().defaultTo(0))
    .addColumn('dropped', 'bigint', (column) => column.notNull().defaultTo(0))
    .addColumn('attempts', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('failing', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (column) => column.notNull().defaultTo(0))
    .addColumn('last_success_at', 'bigint')
    .addColumn('last_failure_at', 'bigint')
    .addColumn('last_failure', 'text')
    .addColumn('holder', 'varchar(255)')
    .addColumn('lease_until', 'bigint', (column) => column.notNull().defaultTo(0))
    .execute();
}
