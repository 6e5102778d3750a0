import { findLinkedDigests } from '../metadata/blobs.js';
import { isForeignKeyViolation } from '../metadata/database.js';
import { touchManifest } from '../metadata/gc.js';
import {
  deleteManifest,
  findManifest,
  findManifestByReference,
  findManifestIds,
  findParentDigests,
} from '../metadata/manifests.js';
import { findRepository, type RepositoryRow } from '../metadata/repositories.js';
import { deleteTag } from '../metadata/tags.js';
import { digestBytes, parseDigest, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, type Descriptor, type ParsedManifest } from '../oci/manifest.js';
import { isNonDistributableLayer } from '../oci/media-types.js';
import { parseLookupReference, parseManifestReference, type ManifestReference } from '../oci/reference.js';
import { storagePaths } from '../storage/paths.js';
import { putSmallObject } from '../storage/small-objects.js';
import type { RegistryStores } from './context.js';
import { withBlobWrite } from './blob-writes.js';
import { KeyedMutex } from './keyed-mutex.js';
import { manifestUnknown, negotiateManifest, type ManifestContent } from './manifest-negotiation.js';
import { recordManifest } from './manifest-rows.js';

export type { ManifestContent } from './manifest-negotiation.js';

export interface PutManifestResult {
  digest: string;
  /** The subject's digest, for the OCI-Subject header. */
  subject: string | null;
}

export interface ManifestServiceOptions {
  deleteEnabled: boolean;
}

/**
 * Manifests and tags. A push writes the manifest bytes (as a content-addressed blob) and the
 * repository's manifest link to storage first, then its rows in one transaction, inside which the
 * tag's storage link is written before the commit.
 */
export class ManifestService {
  /** Queues writers of one tag in this process, rather than have them wait on the database. */
  private readonly tagLocks = new KeyedMutex();

  constructor(
    private readonly stores: RegistryStores,
    private readonly options: ManifestServiceOptions,
  ) {}

  async put(repository: string, referenceText: string, payload: Buffer, contentType: string | undefined): Promise<PutManifestResult> {
    const reference = parseManifestReference(referenceText);
    const digest = digestBytes(payload, reference.kind === 'digest' ? reference.digest.algorithm : 'sha256');
    if (reference.kind === 'digest' && reference.digest.value !== digest.value) {
      throw new RegistryError('DIGEST_INVALID', {
        message: 'manifest digest does not match the reference',
        detail: { reference: reference.digest.value, actual: digest.value },
      });
    }
    const manifest = parseManifest(payload, contentType);
    const existing = await findRepository(this.stores.metadata, repository);
    const blobDigests = manifest.blobs.filter((blob) => !isNonDistributableLayer(blob.mediaType)).map((blob) => blob.digest);
    const childIds = await this.requireReferences(existing, blobDigests, manifest.manifests);

    // The manifest's bytes and links, then its rows, under a claim of its digest that garbage collection respects.
    try {
      await withBlobWrite(this.stores, digest.value, () => this.store(repository, reference, digest, payload, manifest, blobDigests, childIds));
    } catch (error) {
      // Race closed: a blob or child checked above was collected before the rows went in. The rows'
      // foreign keys refuse them (on PostgreSQL after waiting for the collection's commit).
      if (isForeignKeyViolation(error)) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'a blob or manifest the manifest names was removed by garbage collection meanwhile; push it again' });
      }
      throw error;
    }
    return { digest: digest.value, subject: manifest.subject?.digest ?? null };
  }

  private async store(
    repository: string,
    reference: ManifestReference,
    digest: Digest,
    payload: Buffer,
    manifest: ParsedManifest,
    blobDigests: string[],
    childIds: number[],
  ): Promise<void> {
    const { storage, metadata } = this.stores;
    const payloadKey = storagePaths.blobData(digest);
    if ((await storage.stat(payloadKey))?.size !== payload.length) await putSmallObject(storage, payloadKey, payload);
    const linkKey = storagePaths.repositoryManifest(repository, digest);
    if (!(await storage.stat(linkKey))) {
      await putSmallObject(storage, linkKey, Buffer.from(JSON.stringify({ mediaType: manifest.mediaType })));
    }

    const record = {
      repository,
      digest: digest.value,
      payload,
      manifest,
      blobDigests,
      childIds,
      tags: reference.kind === 'tag' ? [reference.tag] : [],
    };
    if (reference.kind === 'tag') {
      await this.tagLocks.run(`${repository}:${reference.tag}`, () =>
        recordManifest(metadata, record, () =>
          putSmallObject(storage, storagePaths.repositoryTag(repository, reference.tag), Buffer.from(digest.value)),
        ),
      );
    } else {
      await recordManifest(metadata, record);
    }
  }

  /** Every blob must be linked to the repository and every child manifest held by it: else MANIFEST_BLOB_UNKNOWN. */
  private async requireReferences(repository: RepositoryRow | undefined, blobDigests: string[], children: Descriptor[]): Promise<number[]> {
    const db = this.stores.metadata;
    const linked = repository ? await findLinkedDigests(db, repository.id, blobDigests) : new Set<string>();
    const missingBlob = blobDigests.find((digest) => !linked.has(digest));
    if (missingBlob) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { detail: { digest: missingBlob } });
    }
    const childDigests = children.map((child) => child.digest);
    const childIds = repository ? await findManifestIds(db, repository.id, childDigests) : new Map<string, number>();
    const missingChild = childDigests.find((digest) => !childIds.has(digest));
    if (missingChild) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'manifest references a manifest unknown to the repository', detail: { digest: missingChild } });
    }
    return [...childIds.values()];
  }

  /** The manifest a GET or HEAD answers with, negotiated against the client's Accept list. */
  async get(repository: string, referenceText: string, accepted: Set<string>): Promise<ManifestContent> {
    const reference = parseLookupReference(referenceText);
    // By digest: an index about to name it, or a pull; recorded before the answer (see touchManifest).
    if (reference.kind === 'digest') await touchManifest(this.stores.metadata, repository, reference.digest.value);
    const manifest = await findManifestByReference(
      this.stores.metadata,
      repository,
      reference.kind === 'tag' ? { tag: reference.tag } : { digest: reference.digest.value },
    );
    if (!manifest) {
      await this.repositoryOrUnknown(repository);
      throw manifestUnknown(referenceText);
    }
    return negotiateManifest(manifest, referenceText, reference.kind === 'tag', accepted, (digest) =>
      findManifestByReference(this.stores.metadata, repository, { digest }),
    );
  }

  private async repositoryOrUnknown(repository: string): Promise<RepositoryRow> {
    const row = await findRepository(this.stores.metadata, repository);
    if (!row) throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    return row;
  }

  /** DELETE by tag removes the tag only; by digest removes the manifest and every tag pointing at it. */
  async delete(repository: string, referenceText: string): Promise<void> {
    if (!this.options.deleteEnabled) {
      throw new RegistryError('UNSUPPORTED', { message: 'deletes are disabled (storage.delete.enabled is false)' });
    }
    const reference = parseManifestReference(referenceText);
    const repositoryRow = await this.repositoryOrUnknown(repository);
    const { storage, metadata } = this.stores;
    if (reference.kind === 'tag') {
      await this.tagLocks.run(`${repository}:${reference.tag}`, () =>
        metadata.transaction().execute(async (transaction) => {
          if (!(await deleteTag(transaction, repositoryRow.id, reference.tag))) throw manifestUnknown(referenceText);
          await storage.delete(storagePaths.repositoryTag(repository, reference.tag));
        }),
      );
      return;
    }
    const manifest = await findManifest(metadata, repositoryRow.id, reference.digest.value);
    if (!manifest) throw manifestUnknown(referenceText);
    const parents = await findParentDigests(metadata, manifest.id);
    if (parents.length > 0) {
      throw new RegistryError('UNSUPPORTED', {
        status: 409,
        message: `manifest is part of index ${parents[0]}; delete the index first`,
        detail: { parents },
      });
    }
    await metadata.transaction().execute(async (transaction) => {
      const tags = await deleteManifest(transaction, manifest.id);
      for (const tag of tags) await storage.delete(storagePaths.repositoryTag(repository, tag));
      await storage.delete(storagePaths.repositoryManifest(repository, parseDigest(manifest.digest)));
    });
  }
}
