import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { findBlob, findLinkedBlob, insertBlob, linkBlob } from '../metadata/blobs.js';
import { ensureRepository } from '../metadata/repositories.js';
import { digestOf, newHash, parseDigest } from '../oci/digest.js';
import type { RegistryStores } from '../registry/context.js';
import { HashingStream } from '../registry/hashing-stream.js';
import type { ManifestService } from '../registry/manifests.js';
import { storagePaths } from '../storage/paths.js';
import { ImportError, type ImportTarget } from './import.js';

/** Imports straight into this registry's stores (no server needed): bytes first, rows second. */
export class LocalImportTarget implements ImportTarget {
  constructor(
    private readonly stores: RegistryStores,
    private readonly manifests: ManifestService,
  ) {}

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const { metadata, storage } = this.stores;
    if (await findLinkedBlob(metadata, repository, digest)) return true;
    const known = await findBlob(metadata, digest);
    if (!known || (await storage.stat(storagePaths.blobData(parseDigest(digest))))?.size !== known.size) return false;
    await this.link(repository, digest);
    return true;
  }

  async putBlob(repository: string, digestText: string, size: number, bytes: () => Readable): Promise<void> {
    const digest = parseDigest(digestText);
    const writer = await this.stores.storage.writer(storagePaths.blobData(digest));
    const hashing = new HashingStream(newHash(digest.algorithm), size);
    try {
      await pipeline(bytes(), hashing, writer.stream);
      const actual = digestOf(digest.algorithm, hashing.hash!);
      if (hashing.bytes !== size || actual.value !== digest.value) {
        throw new ImportError(`blob ${digest.value} in the archive holds ${hashing.bytes} bytes hashing to ${actual.value}`);
      }
      await writer.commit();
    } catch (error) {
      await writer.cancel();
      throw error;
    }
    await insertBlob(this.stores.metadata, { digest: digest.value, size });
    await this.link(repository, digest.value);
  }

  private async link(repository: string, digest: string): Promise<void> {
    const row = await ensureRepository(this.stores.metadata, repository);
    await linkBlob(this.stores.metadata, row.id, digest);
  }

  async putManifest(repository: string, reference: string, payload: Buffer, mediaType: string): Promise<string> {
    return (await this.manifests.put(repository, reference, payload, mediaType)).digest;
  }
}
