import type { Logger } from 'pino';
import { appendAuditEvents, type NewAuditEvent, type OutboxPayloads } from '../metadata/audit.js';
import type { MetadataDb, MetadataExecutor } from '../metadata/database.js';
import { findRepository } from '../metadata/repositories.js';
import { markTagsPulled, tagsNaming } from '../metadata/tags.js';
import type { ManifestRead, PullCounter } from '../registry/manifests.js';
import type { RequestOrigin } from './settings.js';
import type { Clock } from '../clock.js';

interface CountedPulls {
  repository: string;
  /** The tag pulled; null for a pull by digest that no tag resolution of this client led to. */
  tag: string | null;
  digest: string;
  origin: RequestOrigin;
  count: number;
  first: number;
  last: number;
}

/** A tag one client resolved (HEAD or GET by tag) to the digest it is about to fetch. */
interface Resolution {
  tag: string;
  at: number;
  /** The resolution was a GET, counted already: the client's next GET of the digest is the same pull. */
  counted: boolean;
}

/** More distinct names, references and accounts than this between two writes: written at once. */
const maxPending = 10_000;
/** Tag resolutions remembered at most, the oldest forgotten first. */
const maxResolutions = 50_000;
/**
 * How long a client's resolution of a tag makes its GET of the digest a pull of that tag. docker and
 * containerd send the GET at once; the margin covers a client that resolves, then waits for a slot.
 */
export const resolutionWindowMs = 5 * 60_000;

/**
 * Pulls (audit.pulls), counted in memory and written in batches: a pull is otherwise a read, and a
 * write per pull would make every pull wait for the database's writer. Each batch is one
 * transaction: one `pulled` event per repository, tag or digest, account and address (with the count
 * and the first and last pull), and the tags' last-pulled times. Pulls counted since the last write
 * are lost if the process dies; a clean stop writes them.
 *
 * What a pull of a tag is (docs/audit.md, "Pulls"), so that every client's pull counts once:
 * - a GET by tag (skopeo, podman and containers/image fetch the manifest by tag);
 * - a GET by digest from the same client (account and address) that resolved a tag to that digest
 *   with a HEAD or GET within resolutionWindowMs (docker and containerd: HEAD by tag, GET by
 *   digest); after a GET by tag, that GET is the same pull, not a second one;
 * - otherwise a GET by digest is a pull of the digest, and of the tag when exactly one tag of the
 *   repository points at that digest when the batch is written.
 * A HEAD alone is not a pull. Resolutions are remembered per process: with several replicas, a GET
 * that reaches another replica than its HEAD falls to the last rule.
 */
export class PullRecorder implements PullCounter {
  private pending = new Map<string, CountedPulls>();
  private readonly resolutions = new Map<string, Resolution>();
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly metadata: MetadataDb,
    private readonly instance: string,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly outbox: OutboxPayloads,
  ) {}

  read(repository: string, read: ManifestRead, origin: RequestOrigin): void {
    const now = this.clock.now();
    const client = `${repository}@${read.digest}\0${origin.actor}\0${origin.address ?? ''}`;
    if (read.tag !== null) {
      this.resolutions.delete(client);
      this.resolutions.set(client, { tag: read.tag, at: now, counted: read.method === 'GET' });
      if (this.resolutions.size > maxResolutions) this.resolutions.delete(this.resolutions.keys().next().value as string);
      if (read.method === 'GET') this.count(repository, read.tag, read.digest, origin, now);
      return;
    }
    if (read.method !== 'GET') return;
    const resolution = this.resolutions.get(client);
    if (resolution && now - resolution.at <= resolutionWindowMs) {
      this.resolutions.delete(client);
      if (!resolution.counted) this.count(repository, resolution.tag, read.digest, origin, now);
      return;
    }
    this.count(repository, null, read.digest, origin, now);
  }

  private count(repository: string, tag: string | null, digest: string, origin: RequestOrigin, now: number): void {
    const key = `${repository}:${tag ?? ''}@${digest}\0${origin.actor}\0${origin.address ?? ''}`;
    const counted = this.pending.get(key);
    if (counted) {
      counted.count += 1;
      counted.last = now;
      counted.origin = origin;
    } else {
      this.pending.set(key, { repository, tag, digest, origin, count: 1, first: now, last: now });
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
      const repositoryIds = new Map<string, number | null>();
      const tagsByRepository = new Map<number, { names: Set<string>; last: number }>();
      for (const pulls of batch) {
        let repositoryId = repositoryIds.get(pulls.repository);
        if (repositoryId === undefined) {
          repositoryId = (await findRepository(transaction, pulls.repository))?.id ?? null;
          repositoryIds.set(pulls.repository, repositoryId);
        }
        const tag = pulls.tag ?? (repositoryId === null ? null : await onlyTagNaming(transaction, repositoryId, pulls.digest));
        const event: NewAuditEvent = {
          target: tag !== null ? 'tag' : 'manifest',
          repository: pulls.repository,
          tag,
          upstream: null,
          action: 'pulled',
          from: null,
          to: pulls.digest,
          mediaType: null,
          detail: JSON.stringify({ count: pulls.count, first: new Date(pulls.first).toISOString(), last: new Date(pulls.last).toISOString() }),
        };
        await appendAuditEvents(transaction, [event], { ...pulls.origin, instance: this.instance }, pulls.last, this.outbox);
        if (tag !== null && repositoryId !== null) {
          const entry = tagsByRepository.get(repositoryId) ?? { names: new Set<string>(), last: 0 };
          entry.names.add(tag);
          entry.last = Math.max(entry.last, pulls.last);
          tagsByRepository.set(repositoryId, entry);
        }
      }
      for (const [repositoryId, { names, last }] of tagsByRepository) await markTagsPulled(transaction, repositoryId, [...names], last);
    });
  }
}

/** The one tag that points at the digest; null when none or several do (a pull of which would be a guess). */
async function onlyTagNaming(db: MetadataExecutor, repositoryId: number, digest: string): Promise<string | null> {
  const names = await tagsNaming(db, repositoryId, digest, 2);
  return names.length === 1 ? names[0]! : null;
}
