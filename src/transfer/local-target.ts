import type { Readable } from 'node:stream';
import { findLinkedBlob, linkBlob } from '../metadata/blobs.js';
import { ensureRepository } from '../metadata/repositories.js';
import type { MirrorCacheImport } from '../mirror/cache-import.js';
import type { UpstreamSettings } from '../mirror/settings.js';
import { parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import type { RegistryStores } from '../registry/context.js';
import type { ManifestService } from '../registry/manifests.js';
import { holdsBlob, storeVerifiedBlob } from '../registry/verified-blob.js';
import { ImportError, type ImportDestination, type ImportTarget } from './import.js';
import { systemOrigin, type RequestOrigin } from '../metadata/audit.js';

/** `registry import` writes as the registry itself (the person at the terminal is not known to it). */
const importOrigin: RequestOrigin = systemOrigin('import');

/** Why an upstream of this site cannot hold a mirrored repository, or null when it can. */
export function upstreamRefusal(upstreams: readonly UpstreamSettings[], upstreamName: string, repository: string): string | null {
  const upstream = upstreams.find((candidate) => candidate.name === upstreamName);
  if (!upstream) {
    const known = upstreams.length > 0 ? `it names ${upstreams.map((candidate) => candidate.name).join(', ')}` : 'it configures no mirror';
    return `mirrored from upstream ${upstreamName} (${repository}), which this site's configuration does not name (${known})`;
  }
  if (!upstream.repositories.some((pattern) => pattern.test(repository))) {
    return `upstream ${upstreamName} of this site does not serve ${repository} (mirror.upstreams.${upstreamName}.repositories)`;
  }
  return null;
}

/** Imports straight into this registry's stores (no server needed): bytes first, rows second. */
export class LocalImportTarget implements ImportTarget {
  constructor(
    private readonly stores: RegistryStores,
    private readonly manifests: ManifestService,
    /** The mirror cache's imports; null without a mirror (then no upstream accepts a mirrored image). */
    private readonly cache: MirrorCacheImport | null,
    private readonly upstreams: readonly UpstreamSettings[],
  ) {}

  private mirrorCache(): MirrorCacheImport {
    if (!this.cache) throw new ImportError('this site configures no mirror: mirrored images cannot be imported into its cache');
    return this.cache;
  }

  async refusal(destination: ImportDestination): Promise<string | null> {
    return destination.kind === 'mirror' ? upstreamRefusal(this.upstreams, destination.upstream, destination.repository) : null;
  }

  async holdsBlob(destination: ImportDestination, digest: string): Promise<boolean> {
    if (destination.kind === 'local' && (await findLinkedBlob(this.stores.metadata, destination.repository, digest))) return true;
    return holdsBlob(this.stores, parseDigest(digest));
  }

  async useExistingBlob(destination: ImportDestination, digest: string): Promise<boolean> {
    if (!(await this.holdsBlob(destination, digest))) return false;
    // A mirrored manifest links the blobs it names as it goes in.
    if (destination.kind === 'local') await this.link(destination.repository, digest);
    return true;
  }

  async putBlob(destination: ImportDestination, digest: string, size: number, bytes: () => Readable): Promise<void> {
    try {
      if (destination.kind === 'mirror') {
        await this.mirrorCache().putBlob({ upstream: destination.upstream, repository: destination.repository }, digest, size, bytes());
        return;
      }
      await storeVerifiedBlob(this.stores, parseDigest(digest), size, bytes());
    } catch (error) {
      if (error instanceof RegistryError) throw new ImportError(`the archive's ${error.message}`);
      throw error;
    }
    await this.link(destination.repository, digest);
  }

  private async link(repository: string, digest: string): Promise<void> {
    const row = await ensureRepository(this.stores.metadata, repository, this.stores.clock.now());
    await linkBlob(this.stores.metadata, row.id, digest, this.stores.clock.now());
  }

  async putManifest(destination: ImportDestination, reference: string, payload: Buffer, mediaType: string, seenAt: number | undefined) {
    if (destination.kind === 'mirror') return this.mirrorCache().putManifest({ upstream: destination.upstream, repository: destination.repository }, reference, payload, mediaType, seenAt);
    return { digest: (await this.manifests.put(destination.repository, reference, payload, mediaType, importOrigin)).digest };
  }
}
