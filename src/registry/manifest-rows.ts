import { insertBlob, linkBlob } from '../metadata/blobs.js';
import type { MetadataDb } from '../metadata/database.js';
import { insertManifest } from '../metadata/manifests.js';
import { ensureRepository } from '../metadata/repositories.js';
import { setTag } from '../metadata/tags.js';
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

/**
 * The rows that make a manifest visible, written in one transaction once its bytes (and those of
 * everything it names) are in storage: repository, payload blob, blob links, manifest with its
 * references, tags. Used by a push and by a rebuild from storage. Returns the manifest's id.
 */
export async function recordManifest(
  metadata: MetadataDb,
  record: ManifestRecord,
  /**
   * Runs after the tag rows are written and before the commit. Writing a tag's storage link here
   * orders link writes as the commits are ordered, across replicas too: the tag row stays locked
   * (PostgreSQL) or the database stays reserved (SQLite) until the commit.
   */
  beforeCommit?: () => Promise<void>,
): Promise<number> {
  return metadata.transaction().execute(async (transaction) => {
    const repository = await ensureRepository(transaction, record.repository);
    await insertBlob(transaction, { digest: record.digest, size: record.payload.length });
    for (const digest of record.blobDigests) await linkBlob(transaction, repository.id, digest);
    const manifestId = await insertManifest(transaction, {
      repositoryId: repository.id,
      digest: record.digest,
      mediaType: record.manifest.mediaType,
      artifactType: record.manifest.artifactType,
      subjectDigest: record.manifest.subject?.digest ?? null,
      payload: record.payload,
      blobDigests: record.blobDigests,
      childIds: record.childIds,
    });
    for (const tag of record.tags) await setTag(transaction, repository.id, tag, manifestId);
    await beforeCommit?.();
    return manifestId;
  });
}
