import type { Logger } from 'pino';
import { appendAuditEvents, type AuditOrigin, type NewAuditEvent, type OutboxPayloads, type RequestOrigin } from '../metadata/audit.js';
import type { MetadataExecutor } from '../metadata/database.js';
import { addPending, finishPendingKey, takeBackPendingKey } from '../metadata/gc.js';
import type { Digest } from '../oci/digest.js';
import { storagePaths } from '../storage/paths.js';
import { putSmallObject } from '../storage/small-objects.js';
import type { RegistryStores } from './context.js';
import type { ImmutableTags, RefusedTagChange } from './immutable-tags.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { TagCaches } from './tag-cache.js';

/** What every tag change obeys and tells, set once by the composition root. */
export interface TagLedgerRules {
  /** The instance writing (audit.instance), on every event. */
  instance: string | null;
  /** Notification payloads for the outbox: the configured receivers, or `noReceivers`. */
  outbox: OutboxPayloads;
  immutable: ImmutableTags;
  /** Answers by tag kept in memory, dropped after every change; null where nothing is kept (the command line). */
  tagCaches: TagCaches | null;
  /** Where a link removal that failed after its commit is told (GC finishes it later). */
  logger: Logger;
}

/** The tags one change moves: local ones, or one upstream's cached ones (`upstream`). */
export interface TagScope {
  repository: string;
  tags: readonly string[];
  upstream?: string;
}

/**
 * The single unit of work for every change of tags (a push, delete, restore, retention, import, a
 * mirror's tag moving upstream, a manifest's own events): one transaction, under the tags' locks
 * in this process; the immutability check on each event as it is recorded, before anything is
 * written; the audit events with their outbox rows in the same transaction; storage links removed
 * only after the commit (rows first, bytes second); and the tag caches dropped afterwards, whatever
 * the outcome. Quotas and replication hook in here.
 */
export class TagLedger {
  /** Queues writers of one tag in this process, rather than have them wait on the database. */
  private readonly locks = new KeyedMutex();

  constructor(
    private readonly stores: RegistryStores,
    private readonly rules: TagLedgerRules,
  ) {}

  get instance(): string | null {
    return this.rules.instance;
  }

  /** The outbox the ledger's events go to, for the writers that record tag rows themselves (metadata/mirror.ts). */
  get outbox(): OutboxPayloads {
    return this.rules.outbox;
  }

  auditOrigin(origin: RequestOrigin | AuditOrigin): AuditOrigin {
    return { ...origin, instance: 'instance' in origin && origin.instance !== null ? origin.instance : this.rules.instance };
  }

  async change<T>(scope: TagScope, origin: RequestOrigin | AuditOrigin, work: (change: TagChange) => Promise<T>): Promise<T> {
    const keys = [...new Set(scope.tags.map((tag) => `${scope.upstream ?? ''}\n${scope.repository}:${tag}`))].sort();
    try {
      return await this.underLocks(keys, async () => {
        let removals: PendingRemoval[] = [];
        const value = await this.stores.metadata.transaction().execute(async (transaction) => {
          const change = new TagChange(transaction, this.stores, this.rules, this.auditOrigin(origin), scope.repository);
          const result = await work(change);
          removals = await change.close();
          return result;
        });
        for (const removal of removals) await this.remove(removal);
        return value;
      });
    } finally {
      // Whatever the outcome: the database's own signal may come later (PostgreSQL's notification),
      // and a client must read its own write at once. The caches hold local answers only.
      if (scope.upstream === undefined) this.rules.tagCaches?.changed();
    }
  }

  private async underLocks<T>(keys: string[], task: () => Promise<T>): Promise<T> {
    const [first, ...rest] = keys;
    if (first === undefined) return task();
    return this.locks.run(first, () => this.underLocks(rest, task));
  }

  /** After the commit: the change already happened, so a failed removal is left pending for GC, not thrown. */
  private async remove(removal: PendingRemoval): Promise<void> {
    try {
      await finishPendingKey(this.stores.metadata, removal.key, () => this.stores.storage.delete(removal.key));
    } catch (error) {
      this.rules.logger.warn({ key: removal.key, err: error }, 'a deleted link stays in storage until the next garbage collection');
    }
  }
}

/** A storage link to remove after the commit; a writer of the same key takes it back (takeBackPendingKey). */
interface PendingRemoval {
  key: string;
  digest: null;
}

/** One change in progress, in its transaction. */
export class TagChange {
  /** When the change happens, by the registry's clock: the rows' and events' time. */
  readonly now: number;
  private events: NewAuditEvent[] = [];
  private readonly removals: PendingRemoval[] = [];

  constructor(
    readonly transaction: MetadataExecutor,
    private readonly stores: RegistryStores,
    private readonly rules: TagLedgerRules,
    readonly origin: AuditOrigin,
    private readonly repository: string,
  ) {
    this.now = stores.clock.now();
  }

  get outbox(): OutboxPayloads {
    return this.rules.outbox;
  }

  /**
   * Records events to append with the change. A local tag's move or delete that an immutable rule
   * forbids throws here, so nothing after it (a link written) happens; `refusal` names a delete
   * that comes from deleting the manifest.
   */
  record(events: readonly NewAuditEvent[], refusal: RefusedTagChange = 'delete'): void {
    for (const event of events) {
      if (event.target === 'tag' && event.upstream === null && event.tag !== null) {
        const moved = (event.action === 'moved' || event.action === 'restored') && event.from !== null && event.from !== event.to;
        if (event.action === 'deleted') this.rules.immutable.refuse(event.repository, event.tag, refusal);
        else if (moved) this.rules.immutable.refuse(event.repository, event.tag, 'move');
      }
    }
    this.events.push(...events);
  }

  /** Appends the events recorded so far (with their outbox rows) and answers their ids. */
  async appendEvents(): Promise<number[]> {
    const events = this.events;
    this.events = [];
    return appendAuditEvents(this.transaction, events, this.origin, this.now, this.rules.outbox);
  }

  /**
   * Writes a tag's storage link before the commit: the tag row stays locked (PostgreSQL) or the
   * database reserved (SQLite) until then, so link writes are ordered as the commits are, across
   * replicas too. A removal of the link a delete left pending is called off first.
   */
  async writeLink(tag: string, digest: string): Promise<void> {
    const key = storagePaths.repositoryTag(this.repository, tag);
    await takeBackPendingKey(this.transaction, key);
    await putSmallObject(this.stores.storage, key, Buffer.from(digest));
  }

  /**
   * Writes the repository's link to a manifest before the commit, unless it is there: a removal of
   * it a delete left pending is called off first, and one that already ran is undone.
   */
  async writeManifestLink(digest: Digest, mediaType: string): Promise<void> {
    const key = storagePaths.repositoryManifest(this.repository, digest);
    await takeBackPendingKey(this.transaction, key);
    if (!(await this.stores.storage.stat(key))) await putSmallObject(this.stores.storage, key, Buffer.from(JSON.stringify({ mediaType })));
  }

  /** Removes a tag's storage link once the change has committed. */
  removeTagLink(tag: string): void {
    this.removals.push({ key: storagePaths.repositoryTag(this.repository, tag), digest: null });
  }

  /** Removes the repository's link to a manifest once the change has committed. */
  removeManifestLink(digest: Digest): void {
    this.removals.push({ key: storagePaths.repositoryManifest(this.repository, digest), digest: null });
  }

  /**
   * Before the commit: the removals as pending deletions (a crash after the commit leaves them to
   * GC), then the events. In that order, as a writer takes back a pending link before it appends its
   * events: the pending rows' locks, then the audit chain's, in every transaction, so two on
   * PostgreSQL cannot each hold one and wait for the other.
   */
  async close(): Promise<PendingRemoval[]> {
    await addPending(this.transaction, this.removals, this.now);
    await this.appendEvents();
    return this.removals;
  }
}
