import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import pino from 'pino';
import type { RegistryConfig } from '../config/schema.js';
import { MirrorService } from '../mirror/mirror-service.js';
import { mirrorSettings } from '../mirror/settings.js';
import { readSyncList, syncImages } from '../mirror/sync.js';
import { BlobService } from '../registry/blobs.js';
import { ListingService } from '../registry/listings.js';
import { ReferrersService } from '../registry/referrers.js';
import type { RegistryStores } from '../registry/context.js';
import { ManifestService } from '../registry/manifests.js';
import { openStores } from '../stores.js';
import { exportImages } from '../transfer/export.js';
import { HttpImportTarget } from '../transfer/http-target.js';
import { importArchive, type ImportTarget } from '../transfer/import.js';
import { LocalImportTarget } from '../transfer/local-target.js';
import { ConfigError } from '../config/load.js';
import { ProgressBar } from './progress.js';

/** The stores and services an offline command works on, opened as the server would open them. */
async function withServices<T>(
  config: RegistryConfig,
  body: (services: { stores: RegistryStores; manifests: ManifestService; mirror: MirrorService | null }) => Promise<T>,
): Promise<T> {
  const logger = pino({ level: 'warn', base: { service: 'registry' } }, pino.destination(2));
  const opened = await openStores(config, logger);
  try {
    const stores = { storage: opened.storage, metadata: opened.metadata.db };
    const manifests = new ManifestService(stores, { deleteEnabled: config.storage.delete.enabled });
    const blobs = new BlobService(stores, { deleteEnabled: config.storage.delete.enabled });
    const settings = mirrorSettings(config);
    const mirror = settings ? new MirrorService(stores, { manifests, blobs, listings: new ListingService(stores), referrers: new ReferrersService(stores) }, settings, logger) : null;
    return await body({ stores, manifests, mirror });
  } finally {
    await opened.metadata.close();
    opened.closeStorage();
  }
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/** `registry mirror sync --file images.yaml`: exit 0 when every image was cached. */
export async function mirrorSyncCommand(config: RegistryConfig, file: string): Promise<number> {
  return withServices(config, async ({ mirror }) => {
    if (!mirror) throw new ConfigError('mirror sync needs upstreams: configure mirror.upstreams');
    const images = readSyncList(file, mirror);
    const summary = await syncImages(mirror, images, {
      image(label) {
        const bar = new ProgressBar(label, process.stderr, 30, 'bytes');
        return {
          progress: (done, total) => bar.update(done, total),
          done: (outcome) => process.stderr.write(`${label}: ${outcome}\n`),
        };
      },
    });
    process.stdout.write(
      `synced ${summary.images} images: ${summary.manifests} manifests, ${summary.blobs} blobs fetched (${mib(summary.bytes)}), ` +
        `${summary.skipped} already cached, ${summary.failed.length} failed\n`,
    );
    for (const failure of summary.failed) process.stdout.write(`  failed ${failure.image}: ${failure.reason}\n`);
    return summary.failed.length === 0 ? 0 : 1;
  });
}

/** `registry export --out FILE NAME:TAG…`: written to a temporary name, renamed when complete. */
export async function exportCommand(config: RegistryConfig, out: string, references: string[]): Promise<number> {
  if (references.length === 0) throw new ConfigError('export needs at least one NAME:TAG or NAME@DIGEST');
  return withServices(config, async ({ stores, mirror }) => {
    const partial = `${out}.partial`;
    const bar = new ProgressBar('export', process.stderr, 30, 'bytes');
    try {
      const summary = await exportImages(stores, mirror?.addressing ?? null, references, createWriteStream(partial), (done, total) => bar.update(done, total));
      await rename(partial, out);
      process.stdout.write(`exported ${summary.images} images to ${out}: ${summary.manifests} manifests, ${summary.blobs} blobs, ${mib(summary.bytes)}\n`);
      return 0;
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  });
}

/** `registry import FILE [--to URL] [--creds USER:PASSWORD] [--repository NAME]`. */
export async function importCommand(
  config: RegistryConfig,
  file: string,
  options: { to?: string; creds?: string; repository?: string },
): Promise<number> {
  const bar = new ProgressBar('import', process.stderr, 30, 'bytes');
  const run = async (target: ImportTarget, where: string) => {
    const summary = await importArchive(file, target, { ...(options.repository ? { repository: options.repository } : {}), onProgress: (done, total) => bar.update(done, total) });
    process.stdout.write(
      `imported ${summary.images} images into ${where}: ${summary.manifests} manifests, ${summary.blobs} blobs (${mib(summary.bytes)}), ${summary.skipped} blobs already there\n`,
    );
    return 0;
  };
  if (options.to) {
    const colon = options.creds?.indexOf(':') ?? -1;
    const credentials = options.creds && colon > 0 ? { username: options.creds.slice(0, colon), password: options.creds.slice(colon + 1) } : null;
    return run(new HttpImportTarget(options.to, credentials), options.to);
  }
  return withServices(config, ({ stores, manifests }) => run(new LocalImportTarget(stores, manifests), 'this registry\'s stores'));
}
