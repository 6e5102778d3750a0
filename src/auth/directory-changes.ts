import type { Clock } from '../clock.js';
import { bumpDirectoryVersion } from '../metadata/accounts.js';
import { appendAuditEvents, type OutboxPayloads, type RequestOrigin } from '../metadata/audit.js';
import type { MetadataDb, MetadataExecutor } from '../metadata/database.js';
import type { DatabaseAccounts } from './database-accounts.js';

/** What one change of the directory records: its action, and what it changed (never a secret). */
export interface DirectoryChangeRecord {
  action: string;
  detail: Record<string, unknown>;
}

/**
 * The one way the directory (accounts, projects, members, robots) changes: the rows, the audit event
 * (`target` account or project) and the directory's version in one transaction, then this process's
 * copy read again so its own next request sees the change. Other replicas see it within a second.
 */
export class DirectoryChanges {
  constructor(
    private readonly metadata: MetadataDb,
    private readonly clock: Clock,
    private readonly audit: { instance: string | null; outbox: OutboxPayloads },
    /** This process's copy (null: a command, or auth off, keeps none). */
    private readonly copy: DatabaseAccounts | null,
  ) {}

  async change(target: 'account' | 'project', origin: RequestOrigin, work: (transaction: MetadataExecutor, now: number) => Promise<DirectoryChangeRecord>): Promise<void> {
    await this.metadata.transaction().execute(async (transaction) => {
      const now = this.clock.now();
      const done = await work(transaction, now);
      await bumpDirectoryVersion(transaction);
      const event = { target, repository: '', tag: null, upstream: null, action: done.action, from: null, to: null, mediaType: null, detail: JSON.stringify(done.detail) };
      await appendAuditEvents(transaction, [event], { ...origin, instance: this.audit.instance }, now, this.audit.outbox);
    });
    await this.copy?.changed();
  }
}
