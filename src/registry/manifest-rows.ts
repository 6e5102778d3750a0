import { insertBlob, linkBlob } from '../metadata/blobs.js';
import type { MetadataDb } from '../metadata/database.js';
import { insertManifest } from '../metadata/manifests.js';
import { ensureRepository } from '../metadata/repositories.js';
import { moveTag } from '../metadata/tags.js';
import type { ImmutableTags } from './immutable-tags.js';
import { appendAuditEvents, type AuditOrigin, type NewAuditEvent, type OutboxPayloads } from '../metadata/audit.js';
import type { ParsedManifest } from '../oci/manifest.js';

export interface ManifestRecord {
  repository: string;
  digest: string;
  payload: Uint8Array;
  manifest: ParsedManifest;
  /** Blobs of the manifest the repository holds (foreign layers left out). */
  blobDigests: string[];
  /** Row ids of the child manifests an index names. */
  childIds: number[];
  tags: string[];
}

/** Who writes the rows (for the audit events written with them), and the rules tag moves obey. */
export interface ManifestWriteRules {
  origin: AuditOrigin;
  /** Immutable tags: a move of one is refused (and the transaction rolled back). */
  immutable?: ImmutableTags;
  /** Notification payloads, written to the outbox with the events. */
  outbox?: OutboxPayloads;
  /** A push of the digest a tag already has is an `unchanged` event (else none). */
  recordUnchanged: boolean;
  /** A push by digest (no tag) is a `pushed` manifest event. */
  recordPush: boolean;
  /** When the rows are written, by the registry's clock. */
  now: number;
}

/**
 * The rows that make a manifest visible, written in one transaction once its bytes (and those of
 * everything it names) are in storage: repository, payload blob, blob links, manifest with its
 * references, tags, and the audit events of the tags it moves (in the same transaction). Used by a
 * push and by a rebuild from storage. Returns the manifest's id.
 */
export async function recordManifest(
  metadata: MetadataDb,
  record: ManifestRecord,
  rules: ManifestWriteRules,
  /**
   * Runs after the tag rows are written and before the commit. Writing a tag's storage link here
   * orders link writes as the commits are ordered, across replicas too: the tag row stays locked
   * (PostgreSQL) or the database stays reserved (SQLite) until the commit.
   */
  beforeCommit?: () => Promise<void>,
): Promise<number> {
  const now = rules.now;
  return metadata.transaction().execute(async (transaction) => {
    const repository = await ensureRepository(transaction, record.repository, now);
    await insertBlob(transaction, { digest: record.digest, size: record.payload.length }, now);
    for (const digest of record.blobDigests) await linkBlob(transaction, repository.id, digest, now);
    const manifestId = await insertManifest(transaction, {
      repositoryId: repository.id,
      digest: record.digest,
      mediaType: record.manifest.mediaType,
      artifactType: record.manifest.artifactType,
      subjectDigest: record.manifest.subject?.digest ?? null,
      payload: record.payload,
      blobDigests: record.blobDigests,
      childIds: record.childIds,
    }, now);
    const events: NewAuditEvent[] = [];
    const change = { target: 'tag', repository: record.repository, upstream: null, to: record.digest, mediaType: record.manifest.mediaType, size: record.payload.length } as const;
    for (const tag of record.tags) {
      const { previous } = await moveTag(transaction, repository.id, tag, manifestId, now);
      if (previous !== null && previous !== record.digest) rules.immutable?.refuse(record.repository, tag, 'move');
      if (previous === null) events.push({ ...change, tag, action: 'created', from: null });
      else if (previous !== record.digest) events.push({ ...change, tag, action: 'moved', from: previous });
      else if (rules.recordUnchanged) events.push({ ...change, tag, action: 'unchanged', from: previous });
    }
    if (record.tags.length === 0 && rules.recordPush) events.push({ ...change, target: 'manifest', tag: null, action: 'pushed', from: null });
    await beforeCommit?.();
    await appendAuditEvents(transaction, events, rules.origin, now, rules.outbox);
    return manifestId;
  });
}
