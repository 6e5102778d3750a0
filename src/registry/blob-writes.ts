import { randomUUID } from 'node:crypto';
import { claimBlobWrite, releaseBlobWrite } from '../metadata/gc.js';
import { RegistryError } from '../oci/errors.js';
import type { RegistryStores } from './context.js';

/** How long a writer waits for a garbage collection deleting old bytes of the same digest. */
const claimWaitMs = 30_000;

/**
 * Claims a write of a digest's bytes into blobs/ for as long as `write` runs (which writes the
 * bytes, then their rows); garbage collection keeps the digest meanwhile (see claimBlobWrite). While
 * a run is deleting old bytes of that digest, waits for it (a batch takes well under a second); past
 * the wait, 503 with Retry-After so the client retries.
 */
export async function withBlobWrite<T>(stores: RegistryStores, digest: string, write: () => Promise<T>): Promise<T> {
  const id = await claimWrite(stores, digest);
  try {
    return await write();
  } finally {
    await releaseBlobWrite(stores.metadata, id);
  }
}

/** The claim alone, for a write that ends elsewhere (a mirror fetch streaming to clients): release it with `releaseWrite`. */
export async function claimWrite(stores: RegistryStores, digest: string): Promise<string> {
  const id = randomUUID();
  const deadline = stores.clock.now() + claimWaitMs;
  while ((await claimBlobWrite(stores.metadata, id, digest, stores.clock.now())) === 'wait') {
    if (stores.clock.now() > deadline) {
      throw new RegistryError('UNAVAILABLE', {
        message: `garbage collection is deleting an old copy of ${digest}; try again`,
        headers: { 'Retry-After': '1' },
      });
    }
    await stores.clock.sleep(50);
  }
  return id;
}

export function releaseWrite(stores: RegistryStores, id: string): Promise<void> {
  return releaseBlobWrite(stores.metadata, id);
}
