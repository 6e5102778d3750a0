import { sql } from 'kysely';
import { engineOf, type MetadataExecutor } from './database.js';
import { chainHash, genesisHash, type AuditEventContent } from './audit-hash.js';
import type { AuditEventsTable } from './schema.js';
import type { Selectable } from 'kysely';

export type { AuditEventContent } from './audit-hash.js';

/** Who made a change, and through which request: the same for every event of one request. */
export interface AuditOrigin {
  actor: string;
  authMethod: string;
  address: string | null;
  userAgent: string | null;
  requestId: string | null;
  instance: string | null;
  /** The Host the request reached and its method: for notifications only, not kept in the log. */
  host?: string | null;
  method?: string | null;
  scheme?: string | null;
}

/** What a request says about who sent it; the service adds its instance. */
export type RequestOrigin = Omit<AuditOrigin, 'instance'>;

/**
 * Builds the notification (webhook) payload of an event, or null when the event is not notified;
 * the payload goes into the outbox in the event's transaction, under its id.
 */
export interface OutboxPayloads {
  payloadOf(event: AuditEventContent, extra: { size: number | null }, origin: AuditOrigin): string | null;
}

/** No receiver hears of the events: no endpoint is configured, or the writer re-records history (a rebuild). */
export const noReceivers: OutboxPayloads = { payloadOf: () => null };

/** The registry itself as the actor (`system$gc`, `system$mirror`, `system$rebuild`…). */
export function systemOrigin(name: string, instance: string | null = null): AuditOrigin {
  return { actor: `system$${name}`, authMethod: 'system', address: null, userAgent: null, requestId: null, instance };
}

/** An event to append: what changed. Its id, time and hashes are given when it is appended. */
export interface NewAuditEvent {
  /** `account`, `project`: a change of an account or a project of the database (repository '', what changed in `detail`). */
  target: 'tag' | 'manifest' | 'blob' | 'account' | 'project';
  repository: string;
  tag: string | null;
  upstream: string | null;
  action: string;
  from: string | null;
  to: string | null;
  mediaType: string | null;
  restoredEvent?: number | null;
  detail?: string | null;
  /** The manifest's size, for notifications (not kept in the log). */
  size?: number;
}

export interface AuditEventRow extends AuditEventContent {
  prevHash: string;
  hash: string;
}

const chainName = 'audit';

function toEventRow(row: Selectable<AuditEventsTable>): AuditEventRow {
  return {
    id: Number(row.id),
    at: Number(row.at),
    target: row.target,
    repository: row.repository,
    tag: row.tag,
    upstream: row.upstream,
    action: row.action,
    from: row.from_digest,
    to: row.to_digest,
    mediaType: row.media_type,
    actor: row.actor,
    authMethod: row.auth_method,
    address: row.address,
    userAgent: row.user_agent,
    requestId: row.request_id,
    instance: row.instance,
    restoredEvent: row.restored_event === null ? null : Number(row.restored_event),
    detail: row.detail,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/**
 * Appends events to the chain, in the caller's transaction (the one that makes the change they
 * describe, so there is no change without its event and no event without its change); called as the
 * transaction's last statement, so the head is held only until the commit that follows.
 *
 * Race closed (two replicas changing tags at once): the head row is locked (FOR UPDATE on
 * PostgreSQL; on SQLite the transaction holds the writer lock from its start), ids are taken from it
 * rather than from a sequence, so ids follow commit order and each event names the hash of the one
 * committed before it: the chain stays linear.
 */
/**
 * Appends events to the hash chain, each notified one (as `outbox` says) with its outbox row under
 * the same id. `outbox` is required: a writer says which receivers hear of its events (the
 * composition root's, or none on purpose), so no writer forgets them.
 */
export async function appendAuditEvents(db: MetadataExecutor, events: NewAuditEvent[], origin: AuditOrigin, now: number, outbox: OutboxPayloads): Promise<number[]> {
  if (events.length === 0) return [];
  if (!db.isTransaction) return db.transaction().execute((transaction) => appendAuditEvents(transaction, events, origin, now, outbox));
  let head = db.selectFrom('audit_chain').select(['last_id', 'last_hash']).where('name', '=', chainName);
  if (engineOf(db) === 'postgres') head = head.forUpdate();
  const { last_id: lastId, last_hash: lastHash } = await head.executeTakeFirstOrThrow();
  let previous = lastHash;
  let id = Number(lastId);
  const notifications: Array<{ id: number; created_at: number; payload: string }> = [];
  const rows: AuditEventsTable[] = events.map((event) => {
    id += 1;
    const content: AuditEventContent = {
      id,
      at: now,
      target: event.target,
      repository: event.repository,
      tag: event.tag,
      upstream: event.upstream,
      action: event.action,
      from: event.from,
      to: event.to,
      mediaType: event.mediaType,
      actor: origin.actor,
      authMethod: origin.authMethod,
      address: origin.address,
      userAgent: origin.userAgent,
      requestId: origin.requestId,
      instance: origin.instance,
      restoredEvent: event.restoredEvent ?? null,
      detail: event.detail ?? null,
    };
    const hash = chainHash(previous, content);
    const payload = outbox.payloadOf(content, { size: event.size ?? null }, origin);
    if (payload !== null) notifications.push({ id, created_at: now, payload });
    const row: AuditEventsTable = {
      id,
      at: now,
      target: content.target,
      repository: content.repository,
      tag: content.tag,
      upstream: content.upstream,
      action: content.action,
      from_digest: content.from,
      to_digest: content.to,
      media_type: content.mediaType,
      actor: content.actor,
      auth_method: content.authMethod,
      address: content.address,
      user_agent: content.userAgent,
      request_id: content.requestId,
      instance: content.instance,
      restored_event: content.restoredEvent,
      detail: content.detail,
      prev_hash: previous,
      hash,
    };
    previous = hash;
    return row;
  });
  for (let start = 0; start < rows.length; start += 100) await db.insertInto('audit_events').values(rows.slice(start, start + 100)).execute();
  // The notifications of these events, in the same transaction and under the same ids: their order is the commit order.
  if (notifications.length > 0) await db.insertInto('notification_outbox').values(notifications).execute();
  await db.updateTable('audit_chain').set({ last_id: id, last_hash: previous }).where('name', '=', chainName).execute();
  return rows.map((row) => row.id);
}

export interface AuditEventFilter {
  repository?: string;
  tag?: string;
  /** Matches the from or the to digest. */
  digest?: string;
  actor?: string;
  action?: string;
  /** undefined: local and mirrored; null: local only; a name: that upstream's. */
  upstream?: string | null;
  /** Only mirrored tags' events (of any upstream). */
  mirroredOnly?: boolean;
  target?: string;
  /** Times (ms), inclusive. */
  since?: number;
  until?: number;
  /** Only events with a smaller id (the next page, newest first) or a larger one (oldest first). */
  before?: number;
  after?: number;
}

function filtered(db: MetadataExecutor, filter: AuditEventFilter) {
  let select = db.selectFrom('audit_events').selectAll();
  if (filter.repository !== undefined) select = select.where('repository', '=', filter.repository);
  if (filter.tag !== undefined) select = select.where('tag', '=', filter.tag);
  if (filter.digest !== undefined) {
    const digest = filter.digest;
    select = select.where((eb) => eb.or([eb('from_digest', '=', digest), eb('to_digest', '=', digest)]));
  }
  if (filter.actor !== undefined) select = select.where('actor', '=', filter.actor);
  if (filter.action !== undefined) select = select.where('action', '=', filter.action);
  if (filter.upstream === null) select = select.where('upstream', 'is', null);
  else if (filter.upstream !== undefined) select = select.where('upstream', '=', filter.upstream);
  if (filter.mirroredOnly) select = select.where('upstream', 'is not', null);
  if (filter.target !== undefined) select = select.where('target', '=', filter.target);
  if (filter.since !== undefined) select = select.where('at', '>=', filter.since);
  if (filter.until !== undefined) select = select.where('at', '<=', filter.until);
  if (filter.before !== undefined) select = select.where('id', '<', filter.before);
  if (filter.after !== undefined) select = select.where('id', '>', filter.after);
  return select;
}

/** Events matching the filter, newest first (or oldest first), at most `limit`. */
export async function listAuditEvents(db: MetadataExecutor, filter: AuditEventFilter, limit: number, order: 'desc' | 'asc' = 'desc'): Promise<AuditEventRow[]> {
  const rows = await filtered(db, filter).orderBy('id', order).limit(limit).execute();
  return rows.map(toEventRow);
}

export async function findAuditEvent(db: MetadataExecutor, id: number): Promise<AuditEventRow | undefined> {
  const row = await db.selectFrom('audit_events').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toEventRow(row) : undefined;
}

/** Actions that change which digest a tag points at (not pulls, not unchanged re-pushes). */
export const tagMovingActions = ['created', 'moved', 'deleted', 'restored', 'seen', 'gone', 'imported', 'evicted'] as const;

/** Every event that moved the tag, oldest first. */
export async function listTagMoves(db: MetadataExecutor, repository: string, tag: string, upstream: string | null): Promise<AuditEventRow[]> {
  const rows = await filtered(db, { repository, tag, upstream, target: 'tag' })
    .where('action', 'in', [...tagMovingActions])
    .orderBy('id', 'asc')
    .execute();
  return rows.map(toEventRow);
}

/** The last event that moved the tag at or before the time, if any. */
export async function findTagMoveAt(db: MetadataExecutor, repository: string, tag: string, upstream: string | null, at: number): Promise<AuditEventRow | undefined> {
  const row = await filtered(db, { repository, tag, upstream, target: 'tag', until: at })
    .where('action', 'in', [...tagMovingActions])
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? toEventRow(row) : undefined;
}

export interface AuditChainHead {
  lastId: number;
  lastHash: string;
  cutId: number;
  cutHash: string;
  cutAt: number | null;
}

export async function readAuditChainHead(db: MetadataExecutor): Promise<AuditChainHead> {
  const row = await db.selectFrom('audit_chain').selectAll().where('name', '=', chainName).executeTakeFirstOrThrow();
  return { lastId: Number(row.last_id), lastHash: row.last_hash, cutId: Number(row.cut_id), cutHash: row.cut_hash, cutAt: row.cut_at === null ? null : Number(row.cut_at) };
}

/**
 * Prunes events older than the time (audit.retention), oldest first, at most `limit` of them, in one
 * transaction that records where the chain now starts (the last pruned event's id and hash), so
 * that verification can tell a cut from a removal. Returns how many went.
 */
export async function pruneAuditEvents(db: MetadataExecutor, olderThan: number, limit: number, now: number): Promise<number> {
  if (!db.isTransaction) return db.transaction().execute((transaction) => pruneAuditEvents(transaction, olderThan, limit, now));
  let head = db.selectFrom('audit_chain').select(['cut_id']).where('name', '=', chainName);
  if (engineOf(db) === 'postgres') head = head.forUpdate();
  await head.executeTakeFirstOrThrow();
  const last = await db
    .selectFrom('audit_events')
    .select(['id', 'hash'])
    .where('at', '<', olderThan)
    .orderBy('id', 'asc')
    .offset(limit - 1)
    .limit(1)
    .executeTakeFirst();
  const through = last ?? (await db.selectFrom('audit_events').select(['id', 'hash']).where('at', '<', olderThan).orderBy('id', 'desc').limit(1).executeTakeFirst());
  if (!through) return 0;
  const result = await db.deleteFrom('audit_events').where('id', '<=', Number(through.id)).executeTakeFirst();
  await db.updateTable('audit_chain').set({ cut_id: Number(through.id), cut_hash: through.hash, cut_at: now }).where('name', '=', chainName).execute();
  return Number(result.numDeletedRows);
}

/** Whether the chain has any events at all, and how many: for the verify summary. */
export async function countAuditEvents(db: MetadataExecutor): Promise<number> {
  const { count } = await db.selectFrom('audit_events').select(sql<number | string>`count(*)`.as('count')).executeTakeFirstOrThrow();
  return Number(count);
}

export { genesisHash };
