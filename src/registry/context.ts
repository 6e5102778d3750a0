import type { MetadataDb } from '../metadata/database.js';
import type { StorageDriver } from '../storage/driver.js';

/** What the registry services share: the two stores and the options that change their behaviour. */
export interface RegistryStores {
  storage: StorageDriver;
  metadata: MetadataDb;
}

export interface BlobDescriptor {
  digest: string;
  size: number;
}
