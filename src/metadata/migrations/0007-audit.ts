import { sql, type Kysely } from 'kysely';
import type { MetadataEngine } from '../engine.js';
import { chainHash, genesisHash, type AuditEventContent } from '../audit-hash.js';
import { byteOrderedText } from './column-types.js';

/**
 * The audit log: every change of a tag (local or mirrored) and, when configured, of manifests, blobs
 * and pulls, as a hash chain.
 * - `audit_events`: ids are given by the writer from `audit_chain` (not a sequence), under its lock,
 *   so ids follow commit order and each event's `prev_hash` is the hash of the event before it.
 * - `audit_chain`: one row, the head of the chain (last id and hash), and where pruning cut it.
 * - `tags.pulled_at`: the last pull of a tag (audit.pulls), for retention rules.
 * - the mirror's tag history (`mirror_tag_history`) moves into the audit log, and each local tag
 *   gets a `created` event as it is now (actor `system$upgrade`), so histories start from the truth.
 */
function seed(at: number, repository: string, tag: string, action: string, actor: string): Omit<AuditEventContent, 'id'> {
  return {
    at,
    target: 'tag',
    repository,
    tag,
    upstream: null,
    action,
    from: null,
    to: null,
    mediaType: null,
    actor,
    authMethod: 'system',
    address: null,
    userAgent: null,
    requestId: null,
    instance: null,
    restoredEvent: null,
    detail: null,
  };
}

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

  // The log starts from what exists: the mirror's tag history, and a `created` event for each local
  // tag as it is now (its history before the audit log is not known), merged in time order.
  const { rows: mirrored } = await sql<{ upstream: string; repository: string; tag: string; from_digest: string | null; to_digest: string | null; at: number | string; action: string }>`
    select upstream, repository, tag, from_digest, to_digest, at, action from mirror_tag_history order by id`.execute(db);
  const { rows: tags } = await sql<{ repository: string; tag: string; digest: string; media_type: string; at: number | string }>`
    select r.name as repository, t.name as tag, m.digest, m.media_type, t.updated_at as at
    from tags t join manifests m on m.id = t.manifest_id join repositories r on r.id = t.repository_id`.execute(db);
  const seeds: Array<Omit<AuditEventContent, 'id'>> = [
    ...mirrored.map((row) => ({ ...seed(Number(row.at), row.repository, row.tag, row.action, 'system$mirror'), upstream: row.upstream, from: row.from_digest, to: row.to_digest })),
    ...tags.map((row) => ({
      ...seed(Number(row.at), row.repository, row.tag, 'created', 'system$upgrade'),
      to: row.digest,
      mediaType: row.media_type,
      detail: JSON.stringify({ note: 'the tag as it was when the audit log began' }),
    })),
  ].sort((a, b) => a.at - b.at);
  let previous = genesisHash;
  let id = 0;
  for (let start = 0; start < seeds.length; start += 100) {
    const values = seeds.slice(start, start + 100).map((content) => {
      id += 1;
      const event: AuditEventContent = { ...content, id };
      const hash = chainHash(previous, event);
      const value = sql`(${id}, ${event.at}, 'tag', ${event.repository}, ${event.tag}, ${event.upstream}, ${event.action}, ${event.from}, ${event.to}, ${event.mediaType}, ${event.actor}, 'system', ${event.detail}, ${previous}, ${hash})`;
      previous = hash;
      return value;
    });
    await sql`insert into audit_events (id, at, target, repository, tag, upstream, action, from_digest, to_digest, media_type, actor, auth_method, detail, prev_hash, hash) values ${sql.join(values)}`.execute(db);
  }
  await sql`insert into audit_chain (name, last_id, last_hash, cut_id, cut_hash) values ('audit', ${id}, ${previous}, 0, ${genesisHash})`.execute(db);
  await db.schema.dropTable('mirror_tag_history').execute();
}
