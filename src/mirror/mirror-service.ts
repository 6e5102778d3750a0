import type { Logger } from 'pino';
import { listMirrorTagHistory, type MirrorTagEvent, type MirrorTagHistoryQuery } from '../metadata/mirror.js';
import { parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseLookupReference } from '../oci/reference.js';
import type { BlobService } from '../registry/blobs.js';
import type { BlobDescriptor, RegistryStores } from '../registry/context.js';
import type { ListingService, PageResult } from '../registry/listings.js';
import { negotiateManifest, type ManifestContent } from '../registry/manifest-negotiation.js';
import type { ManifestService } from '../registry/manifests.js';
import { referrersIndex, type ReferrersIndex, type ReferrersService } from '../registry/referrers.js';
import { MirrorAddressing, type MirrorTarget } from './addressing.js';
import { MirroredBlobs } from './mirrored-blobs.js';
import type { BlobOpening } from '../registry/repository-content.js';
import type { TagLedger } from '../registry/tag-ledger.js';
import { MirroredManifests } from './mirrored-manifests.js';
import { MirroredReferrers } from './mirrored-referrers.js';
import { MirroredTagLists } from './mirrored-tag-lists.js';
import type { MirrorSettings } from './settings.js';
import type { UpstreamStatus } from './upstream-health.js';
import { Upstreams } from './upstreams.js';


const localMisses = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN']);

function isLocalMiss(error: unknown): boolean {
  return error instanceof RegistryError && localMisses.has(error.code);
}

/**
 * The pull-through cache, around the local services: local content of the requested name first
 * (a local override), then what was cached from the upstream, then the upstream itself (each kind of
 * content has its own part: manifests, referrers, tag lists, blobs, all over one set of upstreams).
 */
export class MirrorService {
  readonly addressing: MirrorAddressing;
  private readonly upstreams: Upstreams;
  private readonly manifests: MirroredManifests;
  private readonly referrerLists: MirroredReferrers;
  private readonly tagLists: MirroredTagLists;
  private readonly blobs: MirroredBlobs;

  constructor(
    private readonly stores: RegistryStores,
    private readonly local: { manifests: ManifestService; blobs: BlobService; listings: ListingService; referrers: ReferrersService },
    readonly settings: MirrorSettings,
    ledger: TagLedger,
    logger: Logger,
  ) {
    this.addressing = new MirrorAddressing(settings);
    this.upstreams = new Upstreams(settings, stores.clock);
    this.manifests = new MirroredManifests(stores, this.upstreams, ledger, logger);
    this.referrerLists = new MirroredReferrers(stores, this.upstreams, this.manifests, logger);
    this.tagLists = new MirroredTagLists(stores, this.upstreams);
    this.blobs = new MirroredBlobs(stores, this.upstreams, logger);
  }

  status(): { instanceId: string; upstreams: UpstreamStatus[] } {
    return { instanceId: this.settings.instanceId, upstreams: this.upstreams.status() };
  }

  /** Changes of mirrored tags, newest first. */
  tagHistory(query: MirrorTagHistoryQuery): Promise<MirrorTagEvent[]> {
    return listMirrorTagHistory(this.stores.metadata, query);
  }

  /** Only plain names (local repositories sit beside the default upstream's) and upstreams that take pushes can hold local content. */
  private mayHoldLocal(target: MirrorTarget): boolean {
    return target.addressedBy === 'default' || (target.addressedBy === 'prefix' && target.upstream.allowPush);
  }

  /** Local content under the requested name wins (a pushed override, or a local repository on the default upstream's names). */
  private async tryLocal<T>(target: MirrorTarget, lookup: () => Promise<T>): Promise<T | null> {
    if (!this.mayHoldLocal(target)) return null;
    try {
      return await lookup();
    } catch (error) {
      if (isLocalMiss(error)) return null;
      throw error;
    }
  }

  async manifest(target: MirrorTarget, localName: string, referenceText: string, accepted: Set<string>, via?: string): Promise<ManifestContent> {
    const reference = parseLookupReference(referenceText);
    const local = await this.tryLocal(target, () => this.local.manifests.get(localName, referenceText, accepted));
    if (local) return local;
    const found = reference.kind === 'tag' ? await this.manifests.byTag(target, reference.tag, via) : await this.manifests.byDigest(target, reference.digest, via);
    return negotiateManifest(found, referenceText, reference.kind === 'tag', accepted, (digest) => this.manifests.byDigest(target, parseDigest(digest), via));
  }

  /** The upstream's manifest through the cache, without local overrides or negotiation; `revalidate` asks about a tag however fresh it is. */
  cachedManifest(target: MirrorTarget, reference: { tag: string } | { digest: string }, options: { revalidate?: boolean } = {}): Promise<ManifestContent> {
    return 'tag' in reference
      ? this.manifests.byTag(target, reference.tag, undefined, options.revalidate)
      : this.manifests.byDigest(target, parseDigest(reference.digest), undefined);
  }

  /** The referrers of a mirrored digest: local ones when the name holds any, else the upstream's list through the cache. */
  async referrers(target: MirrorTarget, localName: string, digestText: string, artifactType?: string, via?: string): Promise<ReferrersIndex> {
    if (this.mayHoldLocal(target)) {
      const local = await this.local.referrers.list(localName, digestText, artifactType);
      if (local.manifests.length > 0) return local;
    }
    return referrersIndex(await this.referrerLists.descriptors(target, parseDigest(digestText), via), artifactType);
  }

  /** The referrer manifests of a digest, cached with their list (sync, so that signatures and SBOMs are there offline). */
  cacheReferrers(target: MirrorTarget, subject: string): Promise<ManifestContent[]> {
    return this.referrerLists.cache(target, subject);
  }

  /** A page of a mirrored repository's tags: the upstream's list when it answers, else the tags cached from it. */
  async tags(target: MirrorTarget, localName: string, page: { limit?: number; last?: string }): Promise<PageResult> {
    const local = await this.tryLocal(target, () => this.local.listings.tags(localName, page));
    if (local) return local;
    const names = await this.tagLists.names(target);
    const sorted = [...new Set(names)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const after = page.last === undefined ? sorted : sorted.filter((name) => Buffer.compare(Buffer.from(name), Buffer.from(page.last!)) > 0);
    const limit = page.limit ?? after.length;
    return { entries: after.slice(0, limit), more: after.length > limit };
  }

  /** Every tag of the upstream repository (its tags/list, page after page). */
  upstreamTags(target: MirrorTarget): Promise<string[]> {
    return this.tagLists.upstream(target);
  }

  /** HEAD of a blob: local or cached, else what upstream says of it (without fetching the bytes). */
  async statBlob(target: MirrorTarget, localName: string, digestText: string, via?: string): Promise<BlobDescriptor> {
    const local = await this.tryLocal(target, () => this.local.blobs.stat(localName, digestText));
    return local ?? this.blobs.stat(target, parseDigest(digestText), via);
  }

  /**
   * GET of a blob: local or cached bytes, else a share of the one upstream fetch of it; without
   * `streamWhileFetching` (a range request) the fetch is waited for and the stored bytes answered.
   */
  async openBlob(target: MirrorTarget, localName: string, digestText: string, via?: string, options = { streamWhileFetching: true }): Promise<BlobOpening> {
    const local = await this.tryLocal(target, () => this.local.blobs.stat(localName, digestText));
    if (local) return { kind: 'stored', blob: local };
    return this.blobs.open(target, parseDigest(digestText), via, options);
  }

  /** Makes sure the blob is in the cache, fetching it (once, however many ask) when it is not. */
  cacheBlob(target: MirrorTarget, digestText: string, via?: string): Promise<{ fetched: boolean; size: number }> {
    return this.blobs.cache(target, digestText, via);
  }
}
