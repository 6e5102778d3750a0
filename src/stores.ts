import type { RegistryConfig } from './config/schema.js';
import { openMetadataDatabase, type MetadataDatabase } from './metadata/database.js';
import { FilesystemDriver } from './storage/filesystem.js';
import type { StorageDriver } from './storage/driver.js';

export interface OpenStores {
  storage: StorageDriver;
  metadata: MetadataDatabase;
  /** Where blob storage lives, for logs. */
  storageLocation: string;
}

/** Opens blob storage and the metadata database (migrated) as the configuration says. */
export async function openStores(config: RegistryConfig): Promise<OpenStores> {
  const storage = await FilesystemDriver.open(config.storage.filesystem.rootdirectory);
  const metadata = await openMetadataDatabase(config.database.url);
  return { storage, metadata, storageLocation: storage.root };
}
