import type { Readable } from 'node:stream';
import type { RequestOrigin } from '../metadata/audit.js';
import type { BlobService } from './blobs.js';
import type { BrowsePage, BrowsingService, TagSummary } from './browsing.js';
import type { BlobDescriptor } from './context.js';
import type { ListingService, Page, PageResult } from './listings.js';
import type { ManifestContent, ManifestService } from './manifests.js';
import type { ReferrersIndex, ReferrersService } from './referrers.js';

/** A blob to answer: bytes in storage, or bytes arriving from an upstream (shared by everyone asking meanwhile). */
export type BlobOpening =
  | { kind: 'stored'; blob: BlobDescriptor }
  | { kind: 'fetching'; digest: string; size: number | null; stream: Readable };

/** A manifest read, for the pull counter: the request's method, and its origin (asked for only when counted). */
export interface ManifestReadContext {
  method: 'GET' | 'HEAD';
  origin: () => RequestOrigin;
}

/**
 * What a client reads under one repository name, wherever it is kept: pushed here, or mirrored
 * from an upstream (see mirror/mirrored-content.ts, which decorates the local content with the
 * cache). The handlers read through this and never ask which.
 */
export interface RepositoryContent {
  manifest(reference: string, accepted: Set<string>, read: ManifestReadContext): Promise<ManifestContent>;
  statBlob(digest: string): Promise<BlobDescriptor>;
  /** `streamWhileFetching` false (a range request): bytes not yet stored are waited for, then answered from storage. */
  openBlob(digest: string, options: { streamWhileFetching: boolean }): Promise<BlobOpening>;
  tags(page: Page): Promise<PageResult>;
  referrers(digest: string, artifactType?: string): Promise<ReferrersIndex>;
  /** The tags with their digests, sizes, pushes and pulls (the web UI's tag table). */
  tagTable(query: TagTableQuery): Promise<BrowsePage<TagSummary>>;
  /** Whose events tell a tag's history: the repository's own, or the upstream repository's it mirrors. */
  historyOf(tag: string): TagHistorySubject;
}

export interface TagTableQuery {
  limit: number;
  last?: string;
  glob?: string;
}

export interface TagHistorySubject {
  repository: string;
  tag: string;
  /** The upstream whose cached tag it is; null for a local tag. */
  upstream: string | null;
}

/** The services local content is read from. */
export interface LocalServices {
  manifests: ManifestService;
  blobs: BlobService;
  listings: ListingService;
  referrers: ReferrersService;
  browsing: BrowsingService;
}

/** A repository pushed to this registry. */
export class LocalContent implements RepositoryContent {
  constructor(
    private readonly repository: string,
    private readonly services: LocalServices,
  ) {}

  manifest(reference: string, accepted: Set<string>, read?: ManifestReadContext): Promise<ManifestContent> {
    return this.services.manifests.get(this.repository, reference, accepted, read);
  }

  statBlob(digest: string): Promise<BlobDescriptor> {
    return this.services.blobs.stat(this.repository, digest);
  }

  async openBlob(digest: string): Promise<BlobOpening> {
    return { kind: 'stored', blob: await this.services.blobs.stat(this.repository, digest) };
  }

  tags(page: Page): Promise<PageResult> {
    return this.services.listings.tags(this.repository, page);
  }

  referrers(digest: string, artifactType?: string): Promise<ReferrersIndex> {
    return this.services.referrers.list(this.repository, digest, artifactType);
  }

  tagTable(query: TagTableQuery): Promise<BrowsePage<TagSummary>> {
    return this.services.browsing.tags(this.repository, query);
  }

  historyOf(tag: string): TagHistorySubject {
    return { repository: this.repository, tag, upstream: null };
  }
}
