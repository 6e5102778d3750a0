import type { BlobDescriptor } from '../registry/context.js';
import type { Page, PageResult } from '../registry/listings.js';
import type { ManifestContent } from '../registry/manifests.js';
import type { ReferrersIndex } from '../registry/referrers.js';
import type { BrowsePage, TagSummary } from '../registry/browsing.js';
import { LocalContent, type BlobOpening, type LocalServices, type RepositoryContent, type TagHistorySubject, type TagTableQuery } from '../registry/repository-content.js';
import type { MirrorTarget } from './addressing.js';
import type { MirrorService } from './mirror-service.js';

/**
 * A mirrored name's content: local content under the name first where it may hold any (a pushed
 * override, or a local repository beside the default upstream's names), else the upstream's through
 * the cache. As Distribution's proxy returns a repository, the handlers get this in place of the
 * local content and never branch on the mirror. Reads of mirrored manifests are not counted as pulls.
 */
export class MirroredContent implements RepositoryContent {
  constructor(
    private readonly mirror: MirrorService,
    private readonly local: LocalServices,
    private readonly target: MirrorTarget,
    private readonly name: string,
    /** The client request's Via header, passed upstream (loop detection). */
    private readonly via: string | undefined,
  ) {}

  manifest(reference: string, accepted: Set<string>): Promise<ManifestContent> {
    return this.mirror.manifest(this.target, this.name, reference, accepted, this.via);
  }

  statBlob(digest: string): Promise<BlobDescriptor> {
    return this.mirror.statBlob(this.target, this.name, digest, this.via);
  }

  openBlob(digest: string, options: { streamWhileFetching: boolean }): Promise<BlobOpening> {
    return this.mirror.openBlob(this.target, this.name, digest, this.via, options);
  }

  tags(page: Page): Promise<PageResult> {
    return this.mirror.tags(this.target, this.name, page);
  }

  referrers(digest: string, artifactType?: string): Promise<ReferrersIndex> {
    return this.mirror.referrers(this.target, this.name, digest, artifactType, this.via);
  }

  /** The tags cached from the upstream repository (what the mirror holds, not the upstream's whole list). */
  tagTable(query: TagTableQuery): Promise<BrowsePage<TagSummary>> {
    return this.local.browsing.cachedTags({ upstream: this.target.upstream.name, repository: this.target.repository }, query);
  }

  historyOf(tag: string): TagHistorySubject {
    return { repository: this.target.repository, tag, upstream: this.target.upstream.name };
  }
}

/** The content a request's name addresses: the mirror's when the route resolved it to an upstream, else the local repository's. */
export class RepositoryContents {
  constructor(
    private readonly local: LocalServices,
    private readonly mirror: MirrorService | null,
  ) {}

  /** `name` as the route resolved it: the repository, and the upstream repository it addresses, if any. */
  of(name: { repository: string; mirror: MirrorTarget | null }, via: string | undefined): RepositoryContent {
    return name.mirror && this.mirror ? new MirroredContent(this.mirror, this.local, name.mirror, name.repository, via) : new LocalContent(name.repository, this.local);
  }
}
