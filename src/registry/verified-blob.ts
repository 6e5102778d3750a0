import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { findBlob, insertBlob } from '../metadata/blobs.js';
import { digestOf, newHash, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { storagePaths } from '../storage/paths.js';
import { withBlobWrite } from './blob-writes.js';
import type { RegistryStores } from './context.js';
import { HashingStream } from './hashing-stream.js';

/**
 * Stores bytes said to be `digest` (and `size` bytes long, when known): hashed while they stream to
 * storage, committed only when both match, then the blob row (bytes first, row second). Nothing is
 * kept on a mismatch, which is DIGEST_INVALID or SIZE_INVALID. Linking the blob is the caller's.
 */
export async function storeVerifiedBlob(stores: RegistryStores, digest: Digest, size: number | undefined, bytes: Readable): Promise<number> {
  return withBlobWrite(stores, digest.value, () => writeVerified(stores, digest, size, bytes));
}

async function writeVerified(stores: RegistryStores, digest: Digest, size: number | undefined, bytes: Readable): Promise<number> {
  const writer = await stores.storage.writer(storagePaths.blobData(digest));
  const hashing = new HashingStream(newHash(digest.algorithm), size);
  try {
    await pipeline(bytes, hashing, writer.stream);
    if (size !== undefined && hashing.bytes !== size) {
      throw new RegistryError('SIZE_INVALID', { message: `blob ${digest.value} holds ${hashing.bytes} bytes, not ${size}`, detail: { digest: digest.value, size: hashing.bytes } });
    }
    const actual = digestOf(digest.algorithm, hashing.hash!);
    if (actual.value !== digest.value) {
      throw new RegistryError('DIGEST_INVALID', { message: `blob ${digest.value} holds ${hashing.bytes} bytes hashing to ${actual.value}`, detail: { digest: digest.value, actual: actual.value } });
    }
    await writer.commit();
  } catch (error) {
    await writer.cancel();
    throw error;
  }
  await insertBlob(stores.metadata, { digest: digest.value, size: hashing.bytes }, stores.clock.now());
  return hashing.bytes;
}

/** Whether this registry holds the blob: its row, and bytes of that size in storage. */
export async function holdsBlob(stores: RegistryStores, digest: Digest): Promise<boolean> {
  const row = await findBlob(stores.metadata, digest.value);
  return row !== undefined && (await stores.storage.stat(storagePaths.blobData(digest)))?.size === row.size;
}
