import { sql } from 'kysely';
import type { MetadataExecutor } from './database.js';

export interface EndpointState {
  name: string;
  deliveredThrough: number;
  delivered: number;
  ignored: number;
  failed: number;
  dropped: number;
  attempts: number;
  failing: boolean;
  nextAttemptAt: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
  lastFailure: string | null;
}

export interface OutboxRow {
  id: number;
  createdAt: number;
  payload: string;
}

/** Rows for endpoints not seen before: each starts after what the outbox holds now (a new receiver gets what happens from now on). */
export async function ensureEndpoints(db: MetadataExecutor, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const { last } = await db.selectFrom('notification_outbox').select(sql<number | string | null>`max(id)`.as('last')).executeTakeFirstOrThrow();
  await db
    .insertInto('notification_endpoints')
    .values(names.map((name) => ({ name, delivered_through: Number(last ?? 0) })))
    .onConflict((conflict) => conflict.column('name').doNothing())
    .execute();
}

/**
 * Takes or renews the endpoint's delivery lease; answers whether this holder has it. One statement,
 * so two replicas cannot both hold it: each event is sent by one replica at a time.
 */
export async function leaseEndpoint(db: MetadataExecutor, name: string, holder: string, leaseMs: number, now: number): Promise<boolean> {
  const result = await db
    .updateTable('notification_endpoints')
    .set({ holder, lease_until: now + leaseMs })
    .where('name', '=', name)
    .where((eb) => eb.or([eb('holder', '=', holder), eb('holder', 'is', null), eb('lease_until', '<', now)]))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function releaseEndpoint(db: MetadataExecutor, name: string, holder: string): Promise<void> {
  await db.updateTable('notification_endpoints').set({ holder: null, lease_until: 0 }).where('name', '=', name).where('holder', '=', holder).execute();
}

export async function readEndpoints(db: MetadataExecutor): Promise<EndpointState[]> {
  const rows = await db.selectFrom('notification_endpoints').selectAll().orderBy('name').execute();
  return rows.map((row) => ({
    name: row.name,
    deliveredThrough: Number(row.delivered_through),
    delivered: Number(row.delivered),
    ignored: Number(row.ignored),
    failed: Number(row.failed),
    dropped: Number(row.dropped),
    attempts: Number(row.attempts),
    failing: Number(row.failing) === 1,
    nextAttemptAt: Number(row.next_attempt_at),
    lastSuccessAt: row.last_success_at === null ? null : Number(row.last_success_at),
    lastFailureAt: row.last_failure_at === null ? null : Number(row.last_failure_at),
    lastFailure: row.last_failure,
  }));
}

/** The next rows after an id, in id (commit) order. */
export async function listOutbox(db: MetadataExecutor, after: number, limit: number): Promise<OutboxRow[]> {
  const rows = await db.selectFrom('notification_outbox').selectAll().where('id', '>', after).orderBy('id').limit(limit).execute();
  return rows.map((row) => ({ id: Number(row.id), createdAt: Number(row.created_at), payload: row.payload }));
}

export async function countOutboxAfter(db: MetadataExecutor, after: number): Promise<number> {
  const { count } = await db.selectFrom('notification_outbox').select(sql<number | string>`count(*)`.as('count')).where('id', '>', after).executeTakeFirstOrThrow();
  return Number(count);
}

/**
 * Moves the endpoint past a row (delivered or ignored), only while this holder leases it and the
 * endpoint is where the holder read it: a replica that lost the lease cannot move it back or skip.
 */
export async function advanceEndpoint(db: MetadataExecutor, name: string, holder: string, from: number, to: number, outcome: 'delivered' | 'ignored', now: number): Promise<boolean> {
  const result = await db
    .updateTable('notification_endpoints')
    .set((eb) => ({
      delivered_through: to,
      [outcome]: eb(outcome, '+', 1),
      ...(outcome === 'delivered' ? { attempts: 0, failing: 0, next_attempt_at: 0, last_success_at: now } : {}),
    }))
    .where('name', '=', name)
    .where('holder', '=', holder)
    .where('delivered_through', '=', from)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** A failed attempt: counted, the next one not before `nextAttemptAt`, failing once attempts reach the threshold. */
export async function recordDeliveryFailure(db: MetadataExecutor, name: string, holder: string, failure: { reason: string; nextAttemptAt: number; threshold: number }, now: number): Promise<void> {
  await db
    .updateTable('notification_endpoints')
    .set((eb) => ({
      failed: eb('failed', '+', 1),
      attempts: eb('attempts', '+', 1),
      failing: sql<number>`case when attempts + 1 >= ${failure.threshold} then 1 else failing end`,
      next_attempt_at: failure.nextAttemptAt,
      last_failure_at: now,
      last_failure: failure.reason.slice(0, 500),
    }))
    .where('name', '=', name)
    .where('holder', '=', holder)
    .execute();
}

/**
 * Drops rows every endpoint has passed, and rows older than the retention (counted as dropped for
 * each endpoint that had not delivered them, which then moves past them). One transaction.
 */
export async function pruneOutbox(db: MetadataExecutor, olderThan: number): Promise<{ dropped: number; removed: number }> {
  if (!db.isTransaction) return db.transaction().execute((transaction) => pruneOutbox(transaction, olderThan));
  const { last } = await db.selectFrom('notification_outbox').select(sql<number | string | null>`max(id)`.as('last')).where('created_at', '<', olderThan).executeTakeFirstOrThrow();
  let dropped = 0;
  if (last !== null) {
    const through = Number(last);
    for (const endpoint of await readEndpoints(db)) {
      if (endpoint.deliveredThrough >= through) continue;
      const missed = await db.selectFrom('notification_outbox').select(sql<number | string>`count(*)`.as('count')).where('id', '>', endpoint.deliveredThrough).where('id', '<=', through).executeTakeFirstOrThrow();
      dropped += Number(missed.count);
      await db
        .updateTable('notification_endpoints')
        .set((eb) => ({ delivered_through: through, dropped: eb('dropped', '+', Number(missed.count)), attempts: 0, next_attempt_at: 0 }))
        .where('name', '=', endpoint.name)
        .execute();
    }
  }
  const { passed } = await db.selectFrom('notification_endpoints').select(sql<number | string | null>`min(delivered_through)`.as('passed')).executeTakeFirstOrThrow();
  const result = await db.deleteFrom('notification_outbox').where('id', '<=', Math.max(Number(passed ?? 0), last === null ? 0 : Number(last))).executeTakeFirst();
  return { dropped, removed: Number(result.numDeletedRows) };
}
