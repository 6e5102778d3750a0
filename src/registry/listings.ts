import { listCachedRepositories } from '../metadata/browsing.js';
import { findRepository, listRepositoriesWithManifests } from '../metadata/repositories.js';
import { listTags } from '../metadata/tags.js';
import { RegistryError } from '../oci/errors.js';
import { byName, cachedNamesAfter, type ListedUpstream } from './cached-names.js';
import type { RegistryStores } from './context.js';
import type { TagCache } from './tag-cache.js';

export interface Page {
  /** At most this many entries; undefined for all of them. */
  limit?: number;
  /** Entries after this one. */
  last?: string;
}

export interface PageResult {
  entries: string[];
  /** The entries stop short of the end: a next page exists. */
  more: boolean;
}

/** Tag lists and the catalog, from the database (never by walking storage). */
export class ListingService {
  constructor(
    private readonly stores: RegistryStores,
    private readonly catalogMaxEntries = 1000,
    /** Whole tag lists kept in memory; each list asks the database when absent. */
    private readonly tagLists?: TagCache<string[]>,
    /** Upstreams whose cached repositories the catalog lists, as `<prefix>/<name upstream>` (as Distribution's proxy lists its cache). */
    private readonly upstreams: readonly ListedUpstream[] = [],
  ) {}

  async tags(repository: string, page: Page): Promise<PageResult> {
    if (page.limit === undefined && page.last === undefined && this.tagLists) {
      const entries = await this.tagLists.read(repository, () => this.tagsIfAny(repository));
      if (entries) return { entries, more: false };
    }
    const repositoryRow = await findRepository(this.stores.metadata, repository);
    if (!repositoryRow) throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    return this.paged(page, Number.MAX_SAFE_INTEGER, (limit, last) => listTags(this.stores.metadata, repositoryRow.id, limit, last));
  }

  /**
   * Every tag of a repository in order, or undefined when it has none: an empty list is not kept,
   * since a repository without tags can go without any tag changing.
   */
  private async tagsIfAny(repository: string): Promise<string[] | undefined> {
    const repositoryRow = await findRepository(this.stores.metadata, repository);
    const tags = repositoryRow ? await listTags(this.stores.metadata, repositoryRow.id, Number.MAX_SAFE_INTEGER) : [];
    return tags.length > 0 ? tags : undefined;
  }

  /** Repositories holding at least one manifest, and the mirror cache's, in one byte order. */
  async catalog(page: Page): Promise<PageResult> {
    return this.paged(page, this.catalogMaxEntries, async (limit, last) => {
      const names = await listRepositoriesWithManifests(this.stores.metadata, limit, last);
      if (this.upstreams.length === 0) return names;
      for (const upstream of this.upstreams) {
        const position = last === undefined ? { all: true as const } : cachedNamesAfter(upstream.prefix, last);
        if ('none' in position) continue;
        const cached = await listCachedRepositories(this.stores.metadata, upstream.name, { ...('repository' in position ? { after: position.repository } : {}), limit });
        names.push(...cached.map((row) => `${upstream.prefix}/${row.repository}`));
      }
      return [...new Set(names)].sort(byName).slice(0, limit);
    });
  }

  private async paged(page: Page, maxEntries: number, fetch: (limit: number, last?: string) => Promise<string[]>): Promise<PageResult> {
    const limit = Math.min(page.limit ?? maxEntries, maxEntries);
    if (limit === 0) return { entries: [], more: false };
    // One entry more than asked tells whether a next page exists.
    const entries = await fetch(limit === Number.MAX_SAFE_INTEGER ? limit : limit + 1, page.last);
    return { entries: entries.slice(0, limit), more: entries.length > limit };
  }
}
