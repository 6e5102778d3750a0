import { sql, type Kysely } from 'kysely';
import type { MetadataEngine } from '../database.js';
import { chainHash, genesisHash, type AuditEventContent } from '../audit-hash.js';
import { byteOrderedText } from './column-types.js';

/**
 * The audit log: every change of a tag (local or mirrored) and, when configured, of manifests, blobs
 * and pulls, as a hash chain.
 * - `audit_events`: ids are given by the writer from `audit_chain` (not a sequence), under its lock,
 *   so ids follow commit order and each event's `prev_hash` is the hash of the event before it.
 * - `audit_chain`: one row, the head of the chain (last id and hash), and where pruning cut it.
 * - `tags.pulled_at`: the last pull of a tag (audit.pulls), for retention rules.
 * - the mirror's tag history (`mirror_tag_history`) moves into the audit log, in its order.
 */
export async function up(db: Kysely<unknown>, engine: MetadataEngine): Promise<void> {
  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'bigint', (column) => column.primaryKey())
    .addColumn('at', 'bigint', (column) => column.notNull())
    .addColumn('target', 'varchar(16)', (column) => column.notNull())
    .addColumn('repository', byteOrderedText(engine, 255), (column) => column.notNull())
    .addColumn('tag', byteOrderedText(engine, 128))
    .addColumn('upstream', 'varchar(255)')
    .addColumn('action', 'varchar(16)', (column) => column.notNull())
    .addColumn('from_digest', 'varchar(200)')
    .addColumn('to_digest', 'varchar(200)')
    .addColumn('media_type', 'varchar(255)')
    .addColumn('actor', 'varchar(255)', (column) => column.notNull())
    .addColumn('auth_method', 'varchar(16)', (column) => column.notNull())
    .addColumn('address', 'varchar(64)')
    .addColumn('user_agent', 'varchar(512)')
    .addColumn('request_id', 'varchar(128)')
    .addColumn('instance', 'varchar(255)')
    .addColumn('restored_event', 'bigint')
    .addColumn('detail', 'text')
    .addColumn('prev_hash', 'varchar(64)', (column) => column.notNull())
    .addColumn('hash', 'varchar(64)', (column) => column.notNull())
    .execute();
  await db.schema.createIndex('audit_events_tag').on('audit_events').columns(['repository', 'tag', 'id']).execute();
  await db.schema.createIndex('audit_events_at').on('audit_events').column('at').execute();
  await db.schema.createIndex('audit_events_from').on('audit_events').column('from_digest').execute();
  await db.schema.createIndex('audit_events_to').on('audit_events').column('to_digest').execute();
  await db.schema.createIndex('audit_events_actor').on('audit_events').columns(['actor', 'id']).execute();

  await db.schema
    .createTable('audit_chain')
    .addColumn('name', 'varchar(16)', (column) => column.primaryKey())
    .addColumn('last_id', 'bigint', (column) => column.notNull())
    .addColumn('last_hash', 'varchar(64)', (column) => column.notNull())
    .addColumn('cut_id', 'bigint', (column) => column.notNull())
    .addColumn('cut_hash', 'varchar(64)', (column) => column.notNull())
    .addColumn('cut_at', 'bigint')
    .execute();

  await db.schema.alterTable('tags').addColumn('pulled_at', 'bigint').execute();

  const { rows } = await sql<{ upstream: string; repository: string; tag: string; from_digest: string | null; to_digest: string | null; at: number | string; action: string }>`
    select upstream, repository, tag, from_digest, to_digest, at, action from mirror_tag_history order by id`.execute(db);
  let previous = genesisHash;
  let id = 0;
  for (let start = 0; start < rows.length; start += 200) {
    const values = rows.slice(start, start + 200).map((row) => {
      id += 1;
      const event: AuditEventContent = {
        id,
        at: Number(row.at),
        target: 'tag',
        repository: row.repository,
        tag: row.tag,
        upstream: row.upstream,
        action: row.action,
        from: row.from_digest,
        to: row.to_digest,
        mediaType: null,
        actor: 'system$mirror',
        authMethod: 'system',
        address: null,
        userAgent: null,
        requestId: null,
        instance: null,
        restoredEvent: null,
        detail: null,
      };
      const hash = chainHash(previous, event);
      const value = sql`(${event.id}, ${event.at}, 'tag', ${event.repository}, ${event.tag}, ${event.upstream}, ${event.action}, ${event.from}, ${event.to}, ${event.actor}, 'system', ${previous}, ${hash})`;
      previous = hash;
      return value;
    });
    await sql`insert into audit_events (id, at, target, repository, tag, upstream, action, from_digest, to_digest, actor, auth_method, prev_hash, hash) values ${sql.join(values)}`.execute(db);
  }
  await sql`insert into audit_chain (name, last_id, last_hash, cut_id, cut_hash) values ('audit', ${id}, ${previous}, 0, ${genesisHash})`.execute(db);
  await db.schema.dropTable('mirror_tag_history').execute();
}
