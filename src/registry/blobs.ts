import type { Readable } from 'node:stream';
import { findBlob, findLinkedBlob, linkBlob, unlinkBlob } from '../metadata/blobs.js';
import { isForeignKeyViolation } from '../metadata/database.js';
import { touchBlob } from '../metadata/gc.js';
import { ensureRepository, findRepository } from '../metadata/repositories.js';
import { parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { validateRepositoryName } from '../oci/names.js';
import { StorageNotFoundError, type ByteRange } from '../storage/driver.js';
import { storagePaths } from '../storage/paths.js';
import type { BlobDescriptor, RegistryStores } from './context.js';
import type { RequestOrigin } from '../metadata/audit.js';
import type { TagLedger } from './tag-ledger.js';

export interface BlobServiceOptions {
  deleteEnabled: boolean;
  /** Blob deletes are audit events (audit.blobs). */
  recordDeletes: boolean;
  /** A blob's unlink is recorded, and notified, as every change is. */
  ledger: TagLedger;
}

export class BlobService {
  constructor(
    private readonly stores: RegistryStores,
    private readonly options: BlobServiceOptions,
  ) {}

  /**
   * The blob as this repository knows it; BLOB_UNKNOWN unless it is linked to the repository. The
   * use is recorded first (see touchBlob): a client that finds the blob here may skip its upload.
   */
  async stat(repository: string, digestText: string): Promise<BlobDescriptor> {
    const digest = parseDigest(digestText);
    await touchBlob(this.stores.metadata, digest.value, this.stores.clock.now());
    const blob = await findLinkedBlob(this.stores.metadata, repository, digest.value);
    if (!blob) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest: digest.value } });
    return blob;
  }

  /** The bytes of a blob found by stat(), whole or one range of them. */
  async read(blob: BlobDescriptor, range?: ByteRange): Promise<Readable> {
    try {
      return await this.stores.storage.read(storagePaths.blobData(parseDigest(blob.digest)), range);
    } catch (error) {
      if (error instanceof StorageNotFoundError) {
        throw new RegistryError('BLOB_UNKNOWN', { message: 'blob bytes are missing from storage', detail: { digest: blob.digest } });
      }
      throw error;
    }
  }

  /** Where the client may fetch the blob's bytes directly (a presigned storage URL), when the driver offers it. */
  async redirectURL(blob: BlobDescriptor): Promise<string | null> {
    const { storage } = this.stores;
    return storage.redirectURL ? storage.redirectURL(storagePaths.blobData(parseDigest(blob.digest)), 'GET') : null;
  }

  /** Unlinks the blob from the repository; its bytes stay until garbage collection finds them unused. */
  async delete(repository: string, digestText: string, origin: RequestOrigin): Promise<void> {
    if (!this.options.deleteEnabled) {
      throw new RegistryError('UNSUPPORTED', { message: 'deletes are disabled (storage.delete.enabled is false)' });
    }
    const digest = parseDigest(digestText);
    const repositoryRow = await findRepository(this.stores.metadata, repository);
    if (!repositoryRow) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest: digest.value } });
    await this.options.ledger.change({ repository, tags: [] }, origin, async (change) => {
      if (!(await unlinkBlob(change.transaction, repositoryRow.id, digest.value))) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest: digest.value } });
      if (this.options.recordDeletes) change.record([{ target: 'blob', repository, tag: null, upstream: null, action: 'deleted', from: digest.value, to: null, mediaType: null }]);
    });
  }

  /**
   * Links a blob that already exists into a repository without an upload: from the named repository,
   * or from anywhere in the registry when no source is named. Null when it cannot be mounted.
   */
  async mount(repository: string, digestText: string, fromRepository?: string): Promise<BlobDescriptor | null> {
    const digest = parseDigest(digestText);
    await touchBlob(this.stores.metadata, digest.value, this.stores.clock.now());
    let source: BlobDescriptor | undefined;
    if (fromRepository === undefined) {
      source = await findBlob(this.stores.metadata, digest.value);
    } else {
      try {
        validateRepositoryName(fromRepository);
      } catch {
        return null;
      }
      source = await findLinkedBlob(this.stores.metadata, fromRepository, digest.value);
    }
    if (!source) return null;
    const stored = await this.stores.storage.stat(storagePaths.blobData(digest));
    if (!stored || stored.size !== source.size) return null;
    const target = await ensureRepository(this.stores.metadata, repository, this.stores.clock.now());
    try {
      // A fresh link keeps the blob through the grace window, as an upload's does.
      await linkBlob(this.stores.metadata, target.id, digest.value, this.stores.clock.now());
    } catch (error) {
      // Race closed: the blob was collected since it was found; the client uploads it instead.
      if (isForeignKeyViolation(error)) return null;
      throw error;
    }
    return source;
  }
}
