import type { Clock } from '../clock.js';
import type { MetadataDb } from '../metadata/database.js';
import type { StorageDriver } from '../storage/driver.js';

/** What the registry services share: the two stores, and the clock every time they record or compare comes from. */
export interface RegistryStores {
  storage: StorageDriver;
  metadata: MetadataDb;
  clock: Clock;
}

export interface BlobDescriptor {
  digest: string;
  size: number;
}
