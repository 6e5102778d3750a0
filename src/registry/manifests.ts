import { findLinkedDigests } from '../metadata/blobs.js';
import {
  deleteManifest,
  findManifest,
  findManifestByReference,
  findManifestIds,
  findParentDigests,
  type ManifestRow,
} from '../metadata/manifests.js';
import { findRepository, type RepositoryRow } from '../metadata/repositories.js';
import { deleteTag } from '../metadata/tags.js';
import { digestBytes, parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { isNonDistributableLayer, mediaTypes } from '../oci/media-types.js';
import { parseManifestReference } from '../oci/reference.js';
import { storagePaths } from '../storage/paths.js';
import { putSmallObject } from '../storage/small-objects.js';
import type { RegistryStores } from './context.js';
import { KeyedMutex } from './keyed-mutex.js';
import { recordManifest } from './manifest-rows.js';

export interface ManifestContent {
  digest: string;
  mediaType: string;
  size: number;
  payload: Uint8Array;
}

export interface PutManifestResult {
  digest: string;
  /** The subject's digest, for the OCI-Subject header. */
  subject: string | null;
}

export interface ManifestServiceOptions {
  deleteEnabled: boolean;
}

/** The platform a manifest list is resolved to for a client that does not accept lists (as Distribution). */
const defaultPlatform = { os: 'linux', architecture: 'amd64' };

function manifestUnknown(reference: string, message?: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', { ...(message ? { message } : {}), detail: { reference: reference.slice(0, 200) } });
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
    return { digest: digest.value, subject: manifest.subject?.digest ?? null };
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

  /**
   * The manifest a GET or HEAD answers with, negotiated against the client's Accept list as
   * Distribution does: OCI types need to be accepted; a manifest list asked for by tag by a client
   * that does not accept lists is answered with its linux/amd64 image.
   */
  async get(repository: string, referenceText: string, accepted: Set<string>): Promise<ManifestContent> {
    const reference = parseManifestReference(referenceText);
    let manifest = await findManifestByReference(
      this.stores.metadata,
      repository,
      reference.kind === 'tag' ? { tag: reference.tag } : { digest: reference.digest.value },
    );
    if (!manifest) {
      await this.repositoryOrUnknown(repository);
      throw manifestUnknown(referenceText);
    }
    if (manifest.mediaType === mediaTypes.ociManifest && !accepted.has(mediaTypes.ociManifest)) {
      throw manifestUnknown(referenceText, 'OCI manifest found, but the Accept header does not support OCI manifests');
    }
    if (manifest.mediaType === mediaTypes.ociIndex && !accepted.has(mediaTypes.ociIndex)) {
      throw manifestUnknown(referenceText, 'OCI index found, but the Accept header does not support OCI indexes');
    }
    if (reference.kind === 'tag' && manifest.mediaType === mediaTypes.dockerManifestList && !accepted.has(mediaTypes.dockerManifestList)) {
      manifest = await this.defaultPlatformImage(repository, manifest, referenceText);
      if (manifest.mediaType === mediaTypes.dockerManifest && !accepted.has(mediaTypes.dockerManifest)) {
        throw new RegistryError('MANIFEST_INVALID', { message: 'Schema 2 manifest not supported by client' });
      }
    }
    return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size, payload: manifest.payload };
  }

  private async defaultPlatformImage(repository: string, list: ManifestRow, referenceText: string): Promise<ManifestRow> {
    const { manifests } = parseManifest(list.payload, list.mediaType);
    const match = manifests.find(
      (child) => child.platform?.os === defaultPlatform.os && child.platform?.architecture === defaultPlatform.architecture,
    );
    const child = match ? await findManifestByReference(this.stores.metadata, repository, { digest: match.digest }) : undefined;
    if (!child) throw manifestUnknown(referenceText, 'manifest list has no linux/amd64 image and the client does not accept lists');
    return child;
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
