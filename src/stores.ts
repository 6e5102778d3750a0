import type { Logger } from 'pino';
import type { RegistryConfig } from './config/schema.js';
import { envNameOf } from './config/load.js';
import { StartupError } from './listen.js';
import { openMetadataDatabase, type MetadataDatabase, type MetadataOptions } from './metadata/database.js';
import type { StorageDriver } from './storage/driver.js';
import { FilesystemDriver } from './storage/filesystem.js';

export interface OpenStores {
  storage: StorageDriver;
  metadata: MetadataDatabase;
  /** Where blob storage lives, for logs. */
  storageLocation: string;
  /** Releases connections the stores hold (the metadata database is closed by its owner). */
  closeStorage(): void;
}

/** The blob storage driver the configuration selects: S3 when a bucket is set, else the filesystem. */
export async function openStorage(config: RegistryConfig, logger?: Logger): Promise<{ storage: StorageDriver; location: string; close(): void }> {
  const s3 = config.storage.s3;
  if (s3.bucket === '') {
    const storage = await FilesystemDriver.open(config.storage.filesystem.rootdirectory);
    return { storage, location: storage.root, close: () => {} };
  }
  // Loaded only for S3: the SDK is about a fifth of the process's memory, and most sites never use it.
  const { S3Driver } = await import('./storage/s3.js');
  const storage = new S3Driver({
    bucket: s3.bucket,
    rootDirectory: s3.rootdirectory,
    region: s3.region,
    endpoint: s3.regionendpoint,
    forcePathStyle: s3.forcepathstyle,
    ...(s3.accesskey !== '' ? { credentials: { accessKeyId: s3.accesskey, secretAccessKey: s3.secretkey } } : {}),
    partSize: s3.chunksize,
    partConcurrency: s3.partconcurrency,
    maxAttempts: s3.maxattempts,
    redirectLifetime: config.storage.redirect.enabled ? config.storage.redirect.expiry : null,
    ...(logger ? { logger } : {}),
  });
  return { storage, location: storage.location, close: () => storage.destroy() };
}

/** Opens blob storage and the metadata database (migrated) as the configuration says. */
export async function openStores(config: RegistryConfig, logger?: Logger, metadataOptions: MetadataOptions = {}): Promise<OpenStores> {
  const { storage, location, close } = await openStorage(config, logger).catch((error: unknown) => {
    const key = config.storage.s3.bucket === '' ? 'storage.filesystem.rootdirectory' : 'storage.s3.bucket';
    throw new StartupError(`cannot open blob storage ${JSON.stringify(config.storage.s3.bucket || config.storage.filesystem.rootdirectory)} (${key}, ${envNameOf(key.split('.'))}): ${(error as Error).message}`, { cause: error });
  });
  const timeouts = { connectMs: config.database.connecttimeout, statementMs: config.database.statementtimeout };
  const metadata = await openMetadataDatabase(config.database.url, { timeouts, ...metadataOptions }).catch((error: unknown) => {
    close();
    throw new StartupError(`cannot open the metadata database ${withoutPassword(config.database.url)} (database.url, REGISTRY_DATABASE_URL): ${(error as Error).message}`, { cause: error });
  });
  return { storage, metadata, storageLocation: location, closeStorage: close };
}

/** A database URL as it may be shown: postgres://user:…@host/db. */
function withoutPassword(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@]+):[^@]*@/, '$1:…@');
}
