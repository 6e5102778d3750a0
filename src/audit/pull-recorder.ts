import type { Logger } from 'pino';
import { appendAuditEvents, type NewAuditEvent, type OutboxPayloads } from '../metadata/audit.js';
import type { MetadataDb } from '../metadata/database.js';
import { findRepository } from '../metadata/repositories.js';
import { markTagsPulled } from '../metadata/tags.js';
import type { PullCounter } from '../registry/manifests.js';
import type { RequestOrigin } from './settings.js';
import type { Clock } from '../clock.js';

interface CountedPulls {
  repository: string;
  reference: { tag: string } | { digest: string };
  origin: RequestOrigin;
  count: number;
  first: number;
  last: number;
}

/** More distinct names, references and accounts than this between two writes: written at once. */
const maxPending = 10_000;

/**
 * Pulls (audit.pulls), counted in memory and written in batches: a pull is otherwise a read, and a
 * write per pull would make every pull wait for the database's writer. Each batch is one
 * transaction: one `pulled` event per repository, reference, account and address (with the count
 * and the first and last pull), and the tags' last-pulled times. Pulls counted since the last write
 * are lost if the process dies; a clean stop writes them.
 */
export class PullRecorder implements PullCounter {
  private pending = new Map<string, CountedPulls>();
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly metadata: MetadataDb,
    private readonly instance: string,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly outbox?: OutboxPayloads,
  ) {}

  count(repository: string, reference: { tag: string } | { digest: string }, origin: RequestOrigin): void {
    const now = this.clock.now();
    const name = 'tag' in reference ? `:${reference.tag}` : `@${reference.digest}`;
    const key = `${repository}${name}\0${origin.actor}\0${origin.address ?? ''}`;
    const counted = this.pending.get(key);
    if (counted) {
      counted.count += 1;
      counted.last = now;
      counted.origin = origin;
    } else {
      this.pending.set(key, { repository, reference, origin, count: 1, first: now, last: now });
      if (this.pending.size >= maxPending) void this.flush();
    }
  }

  /** Writes what was counted; one write at a time, in order. */
  flush(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.flushing = this.flushing.then(() => this.write(batch)).catch((error: unknown) => this.logger.error({ err: error, pulls: batch.length }, 'recording pulls failed'));
    return this.flushing;
  }

  private async write(batch: CountedPulls[]): Promise<void> {
    if (batch.length === 0) return;
    await this.metadata.transaction().execute(async (transaction) => {
      const tagsByRepository = new Map<string, { names: Set<string>; last: number }>();
      for (const pulls of batch) {
        const event: NewAuditEvent = {
          target: 'tag' in pulls.reference ? 'tag' : 'manifest',
          repository: pulls.repository,
          tag: 'tag' in pulls.reference ? pulls.reference.tag : null,
          upstream: null,
          action: 'pulled',
          from: null,
          to: 'digest' in pulls.reference ? pulls.reference.digest : null,
          mediaType: null,
          detail: JSON.stringify({ count: pulls.count, first: new Date(pulls.first).toISOString(), last: new Date(pulls.last).toISOString() }),
        };
        await appendAuditEvents(transaction, [event], { ...pulls.origin, instance: this.instance }, pulls.last, this.outbox);
        if ('tag' in pulls.reference) {
          const entry = tagsByRepository.get(pulls.repository) ?? { names: new Set<string>(), last: 0 };
          entry.names.add(pulls.reference.tag);
          entry.last = Math.max(entry.last, pulls.last);
          tagsByRepository.set(pulls.repository, entry);
        }
      }
      for (const [repository, { names, last }] of tagsByRepository) {
        const row = await findRepository(transaction, repository);
        if (row) await markTagsPulled(transaction, row.id, [...names], last);
      }
    });
  }
}
