/**
 * The audit log's cost and speed, on SQLite and on PostgreSQL where one answers: what writing an
 * event costs a tag move (moves with and without their event, one writer and eight at once), then
 * with 100,000 events in the log, the time of the API's queries, of a tag's history and a lookup in
 * time, of an export, and of verifying the chain, next to the machine's SHA-256 speed over the
 * same canonical texts; and webhook delivery from the outbox next to posting straight to the
 * receiver. Figures only: nothing here passes or fails on speed.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { AuditService } from '../../src/audit/audit-service.js';
import { appendAuditEvents, noReceivers, type AuditOrigin, type NewAuditEvent } from '../../src/metadata/audit.js';
import { canonicalEvent } from '../../src/metadata/audit-hash.js';
import { openMetadataDatabase, type MetadataDb } from '../../src/metadata/database.js';
import { insertManifest } from '../../src/metadata/manifests.js';
import { ensureRepository } from '../../src/metadata/repositories.js';
import { moveTag } from '../../src/metadata/tags.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { withTemporaryDirectory } from '../helpers/server-process.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';
import { NotificationDeliverer } from '../../src/notifications/deliverer.js';
import { NotificationPayloads } from '../../src/notifications/payload.js';
import pino from 'pino';
import { benchSize } from './limits.js';
import { systemClock } from '../../src/clock.js';

const eventCount = benchSize('BENCH_AUDIT_EVENTS', 100_000, 2_000);
const moveCount = benchSize('BENCH_AUDIT_MOVES', 2000, 200);
const webhookCount = benchSize('BENCH_WEBHOOKS', 2000, 200);
const origin: AuditOrigin = { actor: 'alice', authMethod: 'token', address: '10.1.2.3', userAgent: 'docker/27.5.1 go/go1.22.12', requestId: 'bench', instance: 'bench' };
const digestOf = (index: number) => `sha256:${createHash('sha256').update(String(index)).digest('hex')}`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function millis(body: () => Promise<unknown>, rounds = 15): Promise<number> {
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = process.hrtime.bigint();
    await body();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return median(times);
}

async function manifests(db: MetadataDb, repositoryId: number, count: number): Promise<Array<{ id: number; digest: string }>> {
  const rows: Array<{ id: number; digest: string }> = [];
  for (let index = 0; index < count; index++) {
    const digest = digestOf(repositoryId * 1_000_000 + index);
    rows.push({ id: await insertManifest(db, { repositoryId, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: null, subjectDigest: null, payload: Buffer.from('{}'), blobDigests: [], childIds: [] }, Date.now()), digest });
  }
  return rows;
}

/** Tag moves per second: each a transaction that moves the tag and, with `audited`, appends its event. */
async function moveRate(writers: MetadataDb[], repository: string, repositoryId: number, targets: Array<{ id: number; digest: string }>, audited: boolean, parallel: number): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: parallel }, async (_, worker) => {
      const db = writers[worker % writers.length]!;
      for (;;) {
        const index = next++;
        if (index >= moveCount) return;
        const tag = `t${index % 50}`;
        const target = targets[index % targets.length]!;
        await db.transaction().execute(async (transaction) => {
          const { previous } = await moveTag(transaction, repositoryId, tag, target.id, Date.now());
          if (!audited || previous === target.digest) return;
          const event: NewAuditEvent = { target: 'tag', repository, tag, upstream: null, action: previous === null ? 'created' : 'moved', from: previous, to: target.digest, mediaType: null };
          await appendAuditEvents(transaction, [event], origin, Date.now(), noReceivers);
        });
      }
    }),
  );
  return moveCount / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function bench(label: string, url: string): Promise<void> {
  const database = await openMetadataDatabase(url);
  const replica = label === 'postgres' ? await openMetadataDatabase(url) : null;
  try {
    const db = database.db;
    const writers = [db, replica?.db ?? db];
    const plain = await ensureRepository(db, 'bench/plain', Date.now());
    const audited = await ensureRepository(db, 'bench/audited', Date.now());
    const plainTargets = await manifests(db, plain.id, 64);
    const auditedTargets = await manifests(db, audited.id, 64);
    for (const parallel of [1, 8]) {
      const without = await moveRate(writers, 'bench/plain', plain.id, plainTargets, false, parallel);
      const withEvents = await moveRate(writers, 'bench/audited', audited.id, auditedTargets, true, parallel);
      process.stdout.write(
        `audit ${label}: tag moves, ${parallel} writer${parallel > 1 ? 's' : ''}${replica && parallel > 1 ? ' over two pools' : ''}: ${without.toFixed(0)}/s without events, ${withEvents.toFixed(0)}/s with (ratio ${(withEvents / without).toFixed(2)})\n`,
      );
    }

    // The bulk of the log: 100 repositories × 20 tags, moved round robin, by five actors.
    const bulkStarted = process.hrtime.bigint();
    const batch = 500;
    for (let start = 0; start < eventCount; start += batch) {
      const events: NewAuditEvent[] = [];
      for (let index = start; index < Math.min(eventCount, start + batch); index++) {
        events.push({ target: 'tag', repository: `team-${index % 100}/app`, tag: `v${(index >> 7) % 20}`, upstream: null, action: 'moved', from: digestOf(index - 1), to: digestOf(index), mediaType: 'application/vnd.oci.image.manifest.v1+json' });
      }
      await appendAuditEvents(db, events, { ...origin, actor: `user-${start % 5}` }, Date.now() - (eventCount - start) * 1000, noReceivers);
    }
    const bulkSeconds = Number(process.hrtime.bigint() - bulkStarted) / 1e9;
    const audit = new AuditService(db, null, systemClock);
    const total = await audit.count();
    process.stdout.write(`audit ${label}: ${total} events appended in batches of ${batch}: ${(eventCount / bulkSeconds).toFixed(0)} events/s\n`);

    const middle = digestOf(Math.floor(eventCount / 2));
    const queries: Array<[string, () => Promise<unknown>]> = [
      ['newest page of 100', () => audit.events({}, 101)],
      ['one tag, page of 100', () => audit.events({ repository: 'team-7/app', tag: 'v3' }, 101)],
      ['by digest (from or to)', () => audit.events({ digest: middle }, 101)],
      ['by actor, page of 100', () => audit.events({ actor: 'user-3' }, 101)],
      ['an hour\'s window', () => audit.events({ since: Date.now() - eventCount * 500, until: Date.now() - eventCount * 500 + 3_600_000 }, 101)],
      [`a tag's history (${Math.round(eventCount / 2000)} periods)`, () => audit.history('team-7/app', 'v3')],
      ['the tag at a time', () => audit.tagAt('team-7/app', 'v3', Date.now() - eventCount * 500)],
    ];
    for (const [name, query] of queries) process.stdout.write(`audit ${label}: ${name}: ${(await millis(query)).toFixed(2)} ms\n`);

    const exportStarted = process.hrtime.bigint();
    let exported = 0;
    for await (const event of audit.exportEvents({})) exported += event.id > 0 ? 1 : 0;
    process.stdout.write(`audit ${label}: export of ${exported} events: ${(exported / (Number(process.hrtime.bigint() - exportStarted) / 1e9)).toFixed(0)} events/s\n`);

    const verifyStarted = process.hrtime.bigint();
    const verified = await audit.verify();
    const verifySeconds = Number(process.hrtime.bigint() - verifyStarted) / 1e9;
    // The machine's limit for the same work: SHA-256 over the same canonical texts, in memory.
    const rows = await audit.events({}, 10_000);
    const hashStarted = process.hrtime.bigint();
    for (const row of rows) createHash('sha256').update(row.prevHash).update('\n').update(canonicalEvent(row)).digest('hex');
    const hashRate = rows.length / (Number(process.hrtime.bigint() - hashStarted) / 1e9);
    const verifyRate = verified.events / verifySeconds;
    process.stdout.write(
      `audit ${label}: verify of ${verified.events} events (${verified.ok ? 'intact' : 'BROKEN'}): ${verifySeconds.toFixed(2)} s, ${verifyRate.toFixed(0)} events/s; sha256 of the same texts alone ${hashRate.toFixed(0)} events/s (ratio ${(verifyRate / hashRate).toFixed(2)})\n`,
    );
    await webhookDelivery(label, db);
  } finally {
    await replica?.close();
    await database.close();
  }
}

/**
 * Webhook delivery from the outbox to a receiver on loopback: events per second, one request each
 * in order, next to the same client posting the same bodies straight to the receiver (the limit).
 */
async function webhookDelivery(label: string, db: MetadataDb): Promise<void> {
  const receiver = await startWebhookReceiver();
  try {
    const payloads = new NotificationPayloads();
    const events: NewAuditEvent[] = Array.from({ length: webhookCount }, (_, index) => ({ target: 'tag', repository: 'bench/hooks', tag: `v${index}`, upstream: null, action: 'created', from: null, to: digestOf(index), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1234 }));
    const body = `{"events":[${payloads.payloadOf({ ...events[0]!, id: 1, at: Date.now(), ...origin, restoredEvent: null, detail: null }, { size: 1234 }, origin)}]}`;
    const directStarted = process.hrtime.bigint();
    for (let index = 0; index < webhookCount; index++) await (await fetch(receiver.url, { method: 'POST', body })).arrayBuffer();
    const direct = webhookCount / (Number(process.hrtime.bigint() - directStarted) / 1e9);
    receiver.accepted.length = 0;
    const deliverer = new NotificationDeliverer(db, [{ name: 'bench', url: receiver.url, headers: {}, timeoutMs: 5000, threshold: 3, backoffMs: 100, ignoredMediaTypes: [], ignoredActions: [], disabled: false, secret: 'bench' }], 7 * 86_400_000, pino({ level: 'silent' }));
    await deliverer.start();
    const started = process.hrtime.bigint();
    for (let start = 0; start < events.length; start += 100) await appendAuditEvents(db, events.slice(start, start + 100), origin, Date.now(), payloads);
    await receiver.waitFor(webhookCount, 120_000);
    const rate = webhookCount / (Number(process.hrtime.bigint() - started) / 1e9);
    await deliverer.stop();
    process.stdout.write(`audit ${label}: webhook delivery of ${webhookCount} events, in order, signed: ${rate.toFixed(0)} events/s; the same client posting straight to the receiver ${direct.toFixed(0)}/s (ratio ${(rate / direct).toFixed(2)})\n`);
  } finally {
    await receiver.close();
  }
}

await withTemporaryDirectory('registry-bench-audit-', async (directory) => {
  await bench('sqlite', `sqlite:${path.join(directory, 'registry.db')}`);
});
const skip = await postgresSkipReason();
if (skip) {
  process.stdout.write(`audit postgres: skipped (${skip})\n`);
} else {
  const created = await createTestDatabase();
  try {
    await bench('postgres', created.url);
  } finally {
    await created.drop();
  }
}
