import { createWriteStream, readdirSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { ConfigError, readYamlFile } from '../config/load.js';
import type { RegistryConfig } from '../config/schema.js';
import { findUpstreamsCaching } from '../metadata/mirror.js';
import type { MirrorSettings } from '../mirror/settings.js';
import { buildServices, registrySettings } from '../composition.js';
import type { RegistryServices } from '../http/context.js';
import { readSyncList, syncImages } from '../mirror/sync.js';
import type { RegistryStores } from '../registry/context.js';
import { openStores } from '../stores.js';
import { exportImages, type ExportRequest } from '../transfer/export.js';
import { HttpImportTarget } from '../transfer/http-target.js';
import { importArchive, type ImportTarget } from '../transfer/import.js';
import { blobEntryName, bundleDescriptionName, parseBundleDescription } from '../transfer/layout.js';
import { LocalImportTarget } from '../transfer/local-target.js';
import { listTarEntries, readTarEntryBytes } from '../transfer/tar.js';
import { ProgressBar } from './progress.js';
import { describeContent, formatBytes, plural } from './report.js';
import { systemClock } from '../clock.js';

interface OfflineServices {
  stores: RegistryStores;
  services: RegistryServices;
  settings: MirrorSettings | null;
}

/** The stores and services an offline command works on, opened and built as the server's are. */
async function withServices<T>(config: RegistryConfig, body: (services: OfflineServices) => Promise<T>): Promise<T> {
  const logger = pino({ level: 'warn', base: { service: 'registry' } }, pino.destination(2));
  const opened = await openStores(config, logger);
  try {
    const settings = registrySettings(config);
    const { services, stores } = buildServices({ stores: { storage: opened.storage, metadata: opened.metadata.db, clock: systemClock }, logger, settings });
    return await body({ stores, services, settings: settings.mirror });
  } finally {
    await opened.metadata.close();
    opened.closeStorage();
  }
}

/** Output for scripts (`--json`): the summary alone, as one JSON document on stdout. */
function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `registry mirror sync --file images.yaml [--json]`: exit 0 when every image was cached. */
export async function mirrorSyncCommand(config: RegistryConfig, file: string, options: { json?: boolean } = {}): Promise<number> {
  return withServices(config, async ({ services: { mirror } }) => {
    if (!mirror) throw new ConfigError('mirror sync needs upstreams: configure mirror.upstreams');
    const images = readSyncList(file, mirror);
    const summary = await syncImages(mirror, images, {
      image(label) {
        const bar = new ProgressBar(label, process.stderr, 30, 'bytes');
        return {
          progress: (done, total) => bar.update(done, total),
          done: (outcome) =>
            process.stderr.write(
              `${label}: ${'failed' in outcome ? `failed: ${outcome.failed}` : `${plural(outcome.blobs, 'blob')}, ${outcome.fetched} fetched, ${outcome.blobs - outcome.fetched} already cached`}\n`,
            ),
        };
      },
    });
    if (options.json) printJson(summary);
    else {
      process.stdout.write(
        `synced ${describeContent(summary)}; ${plural(summary.blobsFetched, 'blob')} fetched (${formatBytes(summary.bytesFetched)}), ` +
          `${summary.blobsPresent} already cached, ${summary.failed.length} failed\n`,
      );
      for (const failure of summary.failed) process.stdout.write(`  failed ${failure.image}: ${failure.reason}\n`);
    }
    return summary.failed.length === 0 ? 0 : 1;
  });
}

/** Configuration files in these folders whose mirror.upstreams give an upstream this path prefix. */
function configFilesNamingPrefix(prefix: string, folders: string[]): Array<{ file: string; upstream: string }> {
  const found: Array<{ file: string; upstream: string }> = [];
  for (const folder of [...new Set(folders)]) {
    let names: string[];
    try {
      names = readdirSync(folder).filter((name) => /\.ya?ml$/.test(name)).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const file = path.join(folder, name);
      let document: unknown;
      try {
        document = readYamlFile(file, 'configuration file');
      } catch {
        continue;
      }
      const upstreams = (document as { mirror?: { upstreams?: Record<string, { prefix?: unknown }> } } | null)?.mirror?.upstreams ?? {};
      for (const [upstream, settings] of Object.entries(upstreams)) {
        const itsPrefix = typeof settings?.prefix === 'string' && settings.prefix !== '' ? settings.prefix : upstream;
        if (itsPrefix === prefix) found.push({ file: path.relative(process.cwd(), file) || file, upstream });
      }
    }
  }
  return found;
}

/**
 * Why a name held nothing to export when it looks like a mirrored one (`dockerhub/library/alpine`)
 * that the configuration in use does not resolve: what the cache holds, and which --config would.
 */
async function explainMirroredName(stores: RegistryStores, settings: MirrorSettings | null, configSource: string | undefined, name: string): Promise<string | undefined> {
  const slash = name.indexOf('/');
  if (slash <= 0) return undefined;
  const prefix = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  if (settings?.upstreams.some((upstream) => upstream.prefix === prefix)) return undefined;
  const folders = [path.resolve('config'), ...(configSource ? [path.dirname(configSource)] : [])];
  const files = configFilesNamingPrefix(prefix, folders);
  const cachedBy = [...new Set([...(await findUpstreamsCaching(stores.metadata, rest)), ...(rest.includes('/') ? [] : await findUpstreamsCaching(stores.metadata, `library/${rest}`))])];
  if (files.length === 0 && cachedBy.length === 0) return undefined;
  const inUse = configSource ? path.relative(process.cwd(), configSource) || configSource : 'no configuration file, only defaults';
  const parts = [`${name} looks like a mirrored name (path prefix ${prefix})`];
  if (cachedBy.length > 0) parts.push(`the mirror cache here holds ${rest} from upstream ${cachedBy.join(', ')}`);
  parts.push(`but the configuration in use (${inUse}) ${settings ? `names no upstream with prefix ${prefix}` : 'configures no mirror'}`);
  const hint = files[0]
    ? `${files[0].file} does (upstream ${files[0].upstream}): run the command with --config ${files[0].file}`
    : `pass --config with the mirror configuration whose upstream has prefix ${prefix}`;
  return `${parts.join('; ')}. ${hint}`;
}

/** The blobs a previous bundle carried, including those it left out because one before it carried them. */
async function previousBundle(file: string): Promise<NonNullable<ExportRequest['since']>> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw new ConfigError(`--since ${file}: ${(error as Error).message}`);
  }
  try {
    const entries = await listTarEntries(handle);
    const descriptionEntry = entries.find((entry) => entry.name === bundleDescriptionName);
    if (!descriptionEntry) throw new ConfigError(`--since ${file}: not a bundle written by registry export (no ${bundleDescriptionName})`);
    const description = parseBundleDescription(await readTarEntryBytes(handle, descriptionEntry), file);
    const carried = new Set(description.leftOut);
    for (const entry of entries) {
      const match = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(entry.name);
      if (match && entry.type === 'file' && blobEntryName(`${match[1]}:${match[2]}`) === entry.name) carried.add(`${match[1]}:${match[2]}`);
    }
    return { description, carried };
  } finally {
    await handle.close();
  }
}

export interface ExportOptions {
  out: string;
  references: string[];
  /** --all-mirrored: every image cached from the configured upstreams (or the one named by --upstream). */
  allMirrored?: boolean;
  upstream?: string;
  since?: string;
  json?: boolean;
  /** The configuration file in use, for the advice on mirrored names it does not resolve. */
  configSource?: string;
}

/** `registry export --out FILE NAME:TAG… | --all-mirrored [--upstream NAME] [--since BUNDLE]`: written to a temporary name, renamed when complete. */
export async function exportCommand(config: RegistryConfig, options: ExportOptions): Promise<number> {
  if (options.references.length === 0 && !options.allMirrored) throw new ConfigError('export needs NAME:TAG or NAME@DIGEST arguments, or --all-mirrored');
  if (options.upstream && !options.allMirrored) throw new ConfigError('--upstream goes with --all-mirrored');
  const since = options.since ? await previousBundle(options.since) : undefined;
  return withServices(config, async ({ stores, services: { mirror }, settings }) => {
    let allMirrored: ExportRequest['allMirrored'];
    if (options.allMirrored) {
      if (!settings) throw new ConfigError('export --all-mirrored needs the mirror configuration (mirror.upstreams): pass it with --config');
      allMirrored = options.upstream ? settings.upstreams.filter((upstream) => upstream.name === options.upstream) : settings.upstreams;
      if (allMirrored.length === 0) {
        throw new ConfigError(`--upstream ${options.upstream}: no such upstream (configured: ${settings.upstreams.map((upstream) => upstream.name).join(', ')})`);
      }
    }
    const partial = `${options.out}.partial`;
    const bar = new ProgressBar('export', process.stderr, 30, 'bytes');
    try {
      const summary = await exportImages(
        stores,
        mirror?.addressing ?? null,
        {
          references: options.references,
          ...(allMirrored ? { allMirrored } : {}),
          ...(since ? { since } : {}),
          explainMissing: (name) => explainMirroredName(stores, settings, options.configSource, name),
        },
        createWriteStream(partial),
        (done, total) => bar.update(done, total),
      );
      await rename(partial, options.out);
      if (options.json) printJson({ out: options.out, ...summary });
      else {
        const leftOut = since
          ? `; ${plural(summary.blobsLeftOut, 'blob')} (${formatBytes(summary.bytesLeftOut)}) left out, carried by bundle ${since.description.id} of ${since.description.created}`
          : '';
        process.stdout.write(`exported ${describeContent(summary)} to ${options.out}${leftOut}\n`);
        for (const skipped of summary.skipped) process.stdout.write(`  skipped ${skipped.image}: ${skipped.reason}\n`);
      }
      return 0;
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  });
}

/** `registry import FILE [--to URL] [--creds USER:PASSWORD] [--repository NAME] [--as-local] [--json]`. */
export async function importCommand(
  config: RegistryConfig,
  file: string,
  options: { to?: string; creds?: string; repository?: string; asLocal?: boolean; json?: boolean },
): Promise<number> {
  const bar = new ProgressBar('import', process.stderr, 30, 'bytes');
  const run = async (target: ImportTarget, where: string) => {
    const summary = await importArchive(file, target, {
      ...(options.repository ? { repository: options.repository } : {}),
      ...(options.asLocal ? { asLocal: true } : {}),
      onProgress: (done, total) => bar.update(done, total),
    });
    if (options.json) {
      printJson({ into: where, ...summary });
      return 0;
    }
    const tagMoves = summary.tags.created + summary.tags.moved + summary.tags.unchanged + summary.tags['kept-newer'] > 0
      ? `; mirrored tags: ${summary.tags.created} new, ${summary.tags.moved} moved, ${summary.tags.unchanged} unchanged, ${summary.tags['kept-newer']} kept (seen upstream later here)`
      : '';
    process.stdout.write(
      `imported ${describeContent(summary)} into ${where}; ${plural(summary.blobsStored, 'blob')} stored (${formatBytes(summary.bytesStored)}), ` +
        `${summary.blobsPresent} already there${tagMoves}\n`,
    );
    return 0;
  };
  if (options.to) {
    const colon = options.creds?.indexOf(':') ?? -1;
    const credentials = options.creds && colon > 0 ? { username: options.creds.slice(0, colon), password: options.creds.slice(colon + 1) } : null;
    return run(new HttpImportTarget(options.to, credentials), options.to);
  }
  return withServices(config, ({ stores, services, settings }) => run(new LocalImportTarget(stores, services.manifests, services.mirrorCache, settings?.upstreams ?? []), "this registry's stores"));
}
