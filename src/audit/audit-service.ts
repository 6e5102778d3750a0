import type { Logger } from 'pino';
import {
  countAuditEvents,
  findAuditEvent,
  findTagMoveAt,
  listAuditEvents,
  listTagMoves,
  pruneAuditEvents,
  readAuditChainHead,
  type AuditEventFilter,
  type AuditEventRow,
} from '../metadata/audit.js';
import { chainHash } from '../metadata/audit-hash.js';
import type { MetadataDb } from '../metadata/database.js';
import { parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import type { ManifestService, RestoredTag } from '../registry/manifests.js';
import type { RequestOrigin } from './settings.js';
import type { Clock } from '../clock.js';

/** One period of a tag's life: the digest it pointed at, from when until when, and who set it. */
export interface TagPeriod {
  digest: string;
  from: number;
  /** null while current. */
  until: number | null;
  setBy: { event: number; action: string; actor: string; authMethod: string; address: string | null; userAgent: string | null };
  /** The event that ended the period (a move or a delete), when it ended. */
  endedBy: number | null;
}

export type ChainProblemKind = 'altered' | 'removed' | 'inserted';

export interface ChainVerification {
  ok: boolean;
  /** Events checked. */
  events: number;
  /** The first and last ids present. */
  firstId: number | null;
  lastId: number | null;
  /** The head as recorded (note it somewhere else to detect a rewrite of the whole chain). */
  head: { id: number; hash: string };
  /** Where pruning (audit.retention) cut the chain: events up to this id are gone by design. */
  cut: { id: number; at: number | null } | null;
  problem?: { kind: ChainProblemKind; event: number; message: string };
}

export type RestoreTarget = { digest: string } | { event: number };

const verifyPage = 1000;
const exportPage = 1000;

/** Tag history, lookups in time, restores and chain verification over the audit log. */
export class AuditService {
  constructor(
    private readonly metadata: MetadataDb,
    private readonly manifests: ManifestService | null,
    private readonly clock: Clock,
  ) {}

  events(filter: AuditEventFilter, limit: number): Promise<AuditEventRow[]> {
    return listAuditEvents(this.metadata, filter, limit);
  }

  /** Every event of the selection, oldest first, page by page (for export). */
  async *exportEvents(filter: AuditEventFilter): AsyncGenerator<AuditEventRow> {
    let after = filter.after;
    for (;;) {
      const page = await listAuditEvents(this.metadata, { ...filter, ...(after !== undefined ? { after } : {}) }, exportPage, 'asc');
      yield* page;
      if (page.length < exportPage) return;
      after = page.at(-1)!.id;
    }
  }

  /** The tag's life as periods, newest first. */
  async history(repository: string, tag: string, upstream: string | null = null): Promise<TagPeriod[]> {
    const moves = await listTagMoves(this.metadata, repository, tag, upstream);
    const periods: TagPeriod[] = [];
    let current: TagPeriod | null = null;
    for (const event of moves) {
      if (current) {
        current.until = event.at;
        current.endedBy = event.id;
      }
      current = null;
      if (event.to !== null) {
        current = {
          digest: event.to,
          from: event.at,
          until: null,
          setBy: { event: event.id, action: event.action, actor: event.actor, authMethod: event.authMethod, address: event.address, userAgent: event.userAgent },
          endedBy: null,
        };
        periods.push(current);
      }
    }
    return periods.reverse();
  }

  /**
   * What the tag pointed at, at the time (now, without one): the time, and the event that set it;
   * MANIFEST_UNKNOWN when the tag did not exist then.
   */
  async tagAt(repository: string, tag: string, when: number | undefined, upstream: string | null = null): Promise<{ at: number; event: AuditEventRow }> {
    const at = when ?? this.clock.now();
    const event = await findTagMoveAt(this.metadata, repository, tag, upstream, at);
    if (!event || event.to === null) {
      throw new RegistryError('MANIFEST_UNKNOWN', {
        message: `${repository}:${tag} did not exist at ${new Date(at).toISOString()}${event ? ` (deleted by event ${event.id})` : ''}`,
        detail: { name: repository, tag, at: new Date(at).toISOString() },
      });
    }
    return { at, event };
  }

  /**
   * Points a tag back at a digest it had: one given by an event of this tag (the digest that event
   * set, or for a delete the one it removed), or a digest some event of this tag set.
   */
  async restore(repository: string, tag: string, target: RestoreTarget, origin: RequestOrigin): Promise<RestoredTag & { restoredEvent: number }> {
    if (!this.manifests) throw new RegistryError('UNSUPPORTED', { message: 'restores need a running registry' });
    let digest: string;
    let restoredEvent: number;
    if ('event' in target) {
      const event = await findAuditEvent(this.metadata, target.event);
      if (!event || event.target !== 'tag' || event.upstream !== null || event.repository !== repository || event.tag !== tag) {
        throw new RegistryError('MANIFEST_UNKNOWN', { message: `event ${target.event} is not an event of ${repository}:${tag}`, detail: { event: target.event } });
      }
      const chosen = event.to ?? event.from;
      if (chosen === null) throw new RegistryError('MANIFEST_UNKNOWN', { message: `event ${target.event} names no digest`, detail: { event: target.event } });
      digest = chosen;
      restoredEvent = event.id;
    } else {
      digest = parseDigest(target.digest).value;
      const set = (await listTagMoves(this.metadata, repository, tag, null)).filter((event) => event.to === digest).at(-1);
      if (!set) {
        throw new RegistryError('MANIFEST_UNKNOWN', { message: `${repository}:${tag} never pointed at ${digest}: only digests from its history can be restored`, detail: { name: repository, tag, digest } });
      }
      restoredEvent = set.id;
    }
    const restored = await this.manifests.restoreTag(repository, tag, digest, restoredEvent, origin);
    return { ...restored, restoredEvent };
  }

  /**
   * Walks the chain from where it starts (its start, or where pruning cut it) to its head: each
   * event's hash must be that of the previous hash and its content, ids must follow each other, and
   * the last event must be the head. The first event that fails is named.
   */
  async verify(): Promise<ChainVerification> {
    const head = await readAuditChainHead(this.metadata);
    const result: ChainVerification = {
      ok: true,
      events: 0,
      firstId: null,
      lastId: null,
      head: { id: head.lastId, hash: head.lastHash },
      cut: head.cutId > 0 ? { id: head.cutId, at: head.cutAt } : null,
    };
    const fail = (kind: ChainProblemKind, event: number, message: string): ChainVerification => ({ ...result, ok: false, problem: { kind, event, message } });
    let expectedId = head.cutId + 1;
    let previousHash = head.cutHash;
    // Rows at or below the cut were pruned: one found there was put back or inserted.
    const belowCut = head.cutId > 0 ? await listAuditEvents(this.metadata, { before: head.cutId + 1 }, 1, 'asc') : [];
    if (belowCut[0]) return fail('inserted', belowCut[0].id, `event ${belowCut[0].id} is at or before the cut (event ${head.cutId}), where every event was pruned: it was inserted`);
    let after = head.cutId;
    for (;;) {
      const page = await listAuditEvents(this.metadata, { after }, verifyPage, 'asc');
      for (const event of page) {
        if (event.id > head.lastId) return fail('inserted', event.id, `event ${event.id} is after the chain's head (event ${head.lastId}): it was inserted`);
        if (event.id !== expectedId) {
          const missing = event.id - 1 === expectedId ? `event ${expectedId} is` : `events ${expectedId} to ${event.id - 1} are`;
          return fail('removed', expectedId, `${missing} missing: removed from the chain`);
        }
        if (chainHash(event.prevHash, event) !== event.hash) return fail('altered', event.id, `event ${event.id} was altered: its content no longer matches its hash`);
        if (event.prevHash !== previousHash) {
          return event.id === head.cutId + 1 && head.cutId > 0
            ? fail('altered', event.id, `event ${event.id} does not continue from where the chain was cut (event ${head.cutId})`)
            : fail('altered', event.id - 1, `event ${event.id - 1} was altered: its hash is not the one event ${event.id} was chained to`);
        }
        result.firstId ??= event.id;
        result.lastId = event.id;
        result.events += 1;
        previousHash = event.hash;
        expectedId += 1;
      }
      if (page.length < verifyPage) break;
      after = page.at(-1)!.id;
    }
    if (expectedId - 1 < head.lastId) {
      const missing = expectedId === head.lastId ? `event ${expectedId} is` : `events ${expectedId} to ${head.lastId} are`;
      return fail('removed', expectedId, `${missing} missing: removed from the end of the chain`);
    }
    if (previousHash !== head.lastHash) return fail('altered', head.lastId, `event ${head.lastId} was altered: its hash is not the chain's head`);
    return result;
  }

  count(): Promise<number> {
    return countAuditEvents(this.metadata);
  }

  /** Prunes events older than the retention, in batches; answers how many went. */
  async prune(retentionMs: number, logger: Logger): Promise<number> {
    const now = this.clock.now();
    let total = 0;
    for (;;) {
      const pruned = await pruneAuditEvents(this.metadata, now - retentionMs, 1000, now);
      total += pruned;
      if (pruned < 1000) break;
    }
    if (total > 0) logger.info({ pruned: total, olderThan: new Date(now - retentionMs).toISOString() }, 'audit events pruned (audit.retention)');
    return total;
  }
}
