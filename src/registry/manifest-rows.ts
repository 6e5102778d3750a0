import { insertBlob, linkBlob } from '../metadata/blobs.js';
import type { MetadataExecutor } from '../metadata/database.js';
import { insertManifest } from '../metadata/manifests.js';
import { ensureRepository } from '../metadata/repositories.js';
import { moveTag } from '../metadata/tags.js';
import type { NewAuditEvent } from '../metadata/audit.js';
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

/** Which events a manifest's rows are recorded with (audit.unchanged, audit.manifests). */
export interface ManifestEventRules {
  /** A push of the digest a tag already has is an `unchanged` event (else none). */
  recordUnchanged: boolean;
  /** A push by digest (no tag) is a `pushed` manifest event. */
  recordPush: boolean;
}

export interface WrittenManifest {
  id: number;
  /** The digest each of the record's tags pointed at before (null: it was created). */
  moves: Array<{ tag: string; previous: string | null }>;
}

/**
 * The rows that make a manifest visible, written in the caller's transaction once its bytes (and
 * those of everything it names) are in storage: repository, payload blob, blob links, manifest with
 * its references, and its tags. Used by a push (through the tag ledger) and by a rebuild from storage.
 */
export async function writeManifestRows(transaction: MetadataExecutor, record: ManifestRecord, now: number): Promise<WrittenManifest> {
  const repository = await ensureRepository(transaction, record.repository, now);
  await insertBlob(transaction, { digest: record.digest, size: record.payload.length }, now);
  for (const digest of record.blobDigests) await linkBlob(transaction, repository.id, digest, now);
  const id = await insertManifest(transaction, {
    repositoryId: repository.id,
    digest: record.digest,
    mediaType: record.manifest.mediaType,
    artifactType: record.manifest.artifactType,
    subjectDigest: record.manifest.subject?.digest ?? null,
    payload: record.payload,
    blobDigests: record.blobDigests,
    childIds: record.childIds,
  }, now);
  const moves: WrittenManifest['moves'] = [];
  for (const tag of record.tags) moves.push({ tag, previous: (await moveTag(transaction, repository.id, tag, id, now)).previous });
  return { id, moves };
}

/** The audit events of a manifest's rows just written: its tags' moves, or its push by digest. */
export function manifestEvents(record: ManifestRecord, written: WrittenManifest, rules: ManifestEventRules): NewAuditEvent[] {
  const events: NewAuditEvent[] = [];
  const change = { target: 'tag', repository: record.repository, upstream: null, to: record.digest, mediaType: record.manifest.mediaType, size: record.payload.length } as const;
  for (const { tag, previous } of written.moves) {
    if (previous === null) events.push({ ...change, tag, action: 'created', from: null });
    else if (previous !== record.digest) events.push({ ...change, tag, action: 'moved', from: previous });
    else if (rules.recordUnchanged) events.push({ ...change, tag, action: 'unchanged', from: previous });
  }
  if (record.tags.length === 0 && rules.recordPush) events.push({ ...change, target: 'manifest', tag: null, action: 'pushed', from: null });
  return events;
}
