import {
  cachedRepositoryTotals,
  findPushedAt,
  listCachedRepositories,
  listCachedTagRows,
  listRepositorySummaries,
  listTagRows,
  manifestPayloads,
  pulledSizes,
  repositoryTotals,
  type RepositorySort,
} from '../metadata/browsing.js';
import { findMirrorManifest } from '../metadata/mirror.js';
import { findRepository } from '../metadata/repositories.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { isIndexMediaType } from '../oci/media-types.js';
import { byName, cachedNamesAfter, type ListedUpstream } from './cached-names.js';
import type { RegistryStores } from './context.js';

export interface RepositorySummary {
  /** The name clients pull it by: for a cached repository, `<upstream prefix>/<name upstream>`. */
  name: string;
  /** `local`: pushed here; `mirror`: cached from an upstream (pulled through, synced or imported). */
  source: 'local' | 'mirror';
  /** The upstream a cached repository comes from; null for a local one. */
  upstream: string | null;
  tags: number;
  /** Bytes of its manifests and of the blobs they name, shared layers once. */
  size: number;
  /** Local: the last push. Cached: the last time the cache set one of its tags. */
  pushedAt: number | null;
  pushedBy: string | null;
}

export interface RepositoryQuery {
  sort: RepositorySort;
  limit: number;
  /** The previous page's `next`. */
  last?: string;
  contains?: string;
  /** Only local or only cached repositories; both when absent. */
  source?: 'local' | 'mirror';
  /** Only repositories the caller may pull; all when absent (the catalog grant, or auth off). */
  mayPull?: (name: string) => boolean;
}

export interface RepositoryPage {
  rows: RepositorySummary[];
  /** Where the next page starts (its `last`), when there is one. */
  next: string | null;
}

/** A listed repository before its totals: where it comes from and where it sorts. */
interface Candidate {
  name: string;
  pushedAt: number | null;
  local: { id: number; pushedBy: string | null } | null;
  cached: { upstream: string; repository: string } | null;
}

/** A page of repositories a caller may pull is filled from at most this many rows read; past it, the page ends early with a next link. */
const maxScannedPerPage = 5000;
/** Rows read from each source per round when the caller's grants filter them. */
const filteredBatch = 200;

/** The listing order: by name, or newest push first (ties by name descending), never pushed last by name. */
function compareCandidates(sort: RepositorySort, a: { name: string; pushedAt: number | null }, b: { name: string; pushedAt: number | null }): number {
  if (sort === 'name') return byName(a.name, b.name);
  if (a.pushedAt !== null && b.pushedAt !== null) return b.pushedAt - a.pushedAt || byName(b.name, a.name);
  if (a.pushedAt !== null) return -1;
  if (b.pushedAt !== null) return 1;
  return byName(a.name, b.name);
}

export interface TagSummary {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  /** What a pull of the tag fetches (for an index, every platform). */
  size: number;
  /** `os/architecture[/variant]` of each child of an index; empty for an image. */
  platforms: string[];
  pushedAt: number;
  pushedBy: string | null;
  pulledAt: number | null;
}

export interface BrowsePage<T> {
  rows: T[];
  /** A next page exists. */
  more: boolean;
}

interface Platform {
  os?: unknown;
  architecture?: unknown;
  variant?: unknown;
}

function platformsOf(payload: Uint8Array | undefined): string[] {
  if (!payload) return [];
  try {
    const index = JSON.parse(Buffer.from(payload).toString('utf8')) as { manifests?: Array<{ platform?: Platform }> };
    return (index.manifests ?? []).flatMap(({ platform }) =>
      platform && typeof platform.os === 'string' && typeof platform.architecture === 'string'
        ? [[platform.os, platform.architecture, typeof platform.variant === 'string' ? platform.variant : ''].filter(Boolean).join('/')]
        : [],
    );
  } catch {
    // Stored manifests were validated when pushed; a payload that does not parse has no platforms to show.
    return [];
  }
}

/** The web UI's listings: repository summaries and tag rows, from the database alone. */
export class BrowsingService {
  constructor(
    private readonly stores: RegistryStores,
    /** Upstreams whose caches are listed beside local repositories (none without a mirror). */
    private readonly upstreams: readonly ListedUpstream[] = [],
  ) {}

  /**
   * Local repositories holding manifests and, with a mirror, the repositories its cache holds, in
   * one order under the names clients pull them by. When `mayPull` filters, rows are read in rounds
   * until the page is full, at most maxScannedPerPage rows per request.
   */
  async repositories(query: RepositoryQuery): Promise<RepositoryPage> {
    let cursor = query.last === undefined ? undefined : await this.cursorAt(query.sort, query.last);
    const round = query.mayPull ? Math.max(query.limit + 1, filteredBatch) : query.limit + 1;
    const chosen: Candidate[] = [];
    let scanned = 0;
    let next: string | null = null;
    for (;;) {
      const batch = await this.candidates(query, cursor, round);
      for (const candidate of batch) {
        scanned += 1;
        cursor = candidate;
        if (query.mayPull && !query.mayPull(candidate.name)) continue;
        chosen.push(candidate);
        if (chosen.length > query.limit) break;
      }
      if (chosen.length > query.limit) {
        next = chosen[query.limit - 1]!.name;
        break;
      }
      if (batch.length < round) break;
      if (scanned >= maxScannedPerPage) {
        next = cursor!.name;
        break;
      }
    }
    return { rows: await this.summaries(chosen.slice(0, query.limit)), next };
  }

  /** The listing position of a name from a previous page: its push time too, when sorting by it. */
  private async cursorAt(sort: RepositorySort, name: string): Promise<{ name: string; pushedAt: number | null }> {
    if (sort === 'name') return { name, pushedAt: null };
    const local = await findPushedAt(this.stores.metadata, name);
    if (local) return { name, pushedAt: local.pushedAt };
    for (const upstream of this.upstreams) {
      const position = cachedNamesAfter(upstream.prefix, name);
      if (!('repository' in position)) continue;
      const [row] = await listCachedRepositories(this.stores.metadata, upstream.name, { only: position.repository });
      if (row) return { name, pushedAt: row.pushedAt };
    }
    return { name, pushedAt: null };
  }

  /** Up to `count` rows after the cursor, from every source the query asks for, in listing order. */
  private async candidates(query: RepositoryQuery, cursor: { name: string; pushedAt: number | null } | undefined, count: number): Promise<Candidate[]> {
    const db = this.stores.metadata;
    const found: Candidate[] = [];
    if (query.source !== 'mirror') {
      const rows = await listRepositorySummaries(db, { sort: query.sort, limit: count, ...(cursor ? { after: cursor } : {}), ...(query.contains ? { contains: query.contains } : {}) });
      for (const row of rows) found.push({ name: row.name, pushedAt: row.pushedAt, local: { id: row.id, pushedBy: row.pushedBy }, cached: null });
    }
    if (query.source !== 'local') {
      for (const upstream of this.upstreams) {
        const displayPrefix = `${upstream.prefix}/`;
        const filter = { displayPrefix, ...(query.contains ? { contains: query.contains } : {}) };
        let rows;
        if (query.sort === 'name') {
          const position = cursor ? cachedNamesAfter(upstream.prefix, cursor.name) : { all: true as const };
          if ('none' in position) continue;
          rows = await listCachedRepositories(db, upstream.name, { ...filter, ...('repository' in position ? { after: position.repository } : {}), limit: count });
        } else {
          // Cached repositories are few beside local ones (what a site pulled or carried in): ordered by push time here.
          rows = await listCachedRepositories(db, upstream.name, filter);
        }
        for (const row of rows) {
          const candidate: Candidate = { name: `${displayPrefix}${row.repository}`, pushedAt: row.pushedAt, local: null, cached: { upstream: upstream.name, repository: row.repository } };
          if (!cursor || compareCandidates(query.sort, cursor, candidate) < 0) found.push(candidate);
        }
      }
    }
    return found.sort((a, b) => compareCandidates(query.sort, a, b)).slice(0, count);
  }

  private async summaries(chosen: Candidate[]): Promise<RepositorySummary[]> {
    const db = this.stores.metadata;
    const localTotals = await repositoryTotals(db, chosen.flatMap((candidate) => (candidate.local ? [candidate.local.id] : [])));
    const cachedTotals = new Map<string, Map<string, { tags: number; size: number }>>();
    for (const upstream of new Set(chosen.flatMap((candidate) => (candidate.cached ? [candidate.cached.upstream] : [])))) {
      const names = chosen.flatMap((candidate) => (candidate.cached?.upstream === upstream ? [candidate.cached.repository] : []));
      cachedTotals.set(upstream, await cachedRepositoryTotals(db, upstream, names));
    }
    return chosen.map((candidate) => {
      const totals = candidate.local ? localTotals.get(candidate.local.id) : cachedTotals.get(candidate.cached!.upstream)?.get(candidate.cached!.repository);
      return {
        name: candidate.name,
        source: candidate.local ? 'local' : 'mirror',
        upstream: candidate.cached?.upstream ?? null,
        ...(totals ?? { tags: 0, size: 0 }),
        pushedAt: candidate.pushedAt,
        pushedBy: candidate.local?.pushedBy ?? null,
      };
    });
  }

  async tags(repository: string, page: { limit: number; last?: string; glob?: string }): Promise<BrowsePage<TagSummary>> {
    const repositoryRow = await findRepository(this.stores.metadata, repository);
    if (!repositoryRow) throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    const rows = await listTagRows(this.stores.metadata, repositoryRow.id, { ...page, limit: page.limit + 1 });
    const shown = rows.slice(0, page.limit);
    const manifestIds = [...new Set(shown.map((row) => row.manifestId))];
    const sizes = await pulledSizes(this.stores.metadata, manifestIds);
    const indexPayloads = await manifestPayloads(this.stores.metadata, [...new Set(shown.filter((row) => isIndexMediaType(row.mediaType)).map((row) => row.manifestId))]);
    return {
      rows: shown.map((row) => ({
        name: row.name,
        digest: row.digest,
        mediaType: row.mediaType,
        artifactType: row.artifactType,
        size: sizes.get(row.manifestId) ?? row.manifestSize,
        platforms: platformsOf(indexPayloads.get(row.manifestId)),
        pushedAt: row.pushedAt,
        pushedBy: row.pushedBy,
        pulledAt: row.pulledAt,
      })),
      more: rows.length > page.limit,
    };
  }

  /**
   * A cached repository's tags (the mirror's, under the name clients pull by): what each points at
   * and, where the cache holds the manifests, what a pull fetches (an image's config and layers, an
   * index's cached children with theirs).
   */
  async cachedTags(from: { upstream: string; repository: string }, page: { limit: number; last?: string; glob?: string }): Promise<BrowsePage<TagSummary>> {
    const db = this.stores.metadata;
    const rows = await listCachedTagRows(db, from, { ...page, limit: page.limit + 1 });
    if (rows.length === 0 && page.last === undefined && !page.glob && (await listCachedRepositories(db, from.upstream, { only: from.repository })).length === 0) {
      throw new RegistryError('NAME_UNKNOWN', { detail: { name: from.repository, upstream: from.upstream } });
    }
    const shown = rows.slice(0, page.limit);
    const summaries: TagSummary[] = [];
    for (const row of shown) {
      const manifest = await findMirrorManifest(db, from, row.digest);
      const parsed = manifest ? parsedOrNull(manifest.payload, manifest.mediaType) : null;
      let size = manifest?.size ?? 0;
      if (parsed) {
        size += parsed.blobs.reduce((total, blob) => total + blob.size, 0);
        for (const child of parsed.manifests) {
          const cached = await findMirrorManifest(db, from, child.digest);
          const childParsed = cached ? parsedOrNull(cached.payload, cached.mediaType) : null;
          size += child.size + (childParsed ? childParsed.blobs.reduce((total, blob) => total + blob.size, 0) : 0);
        }
      }
      summaries.push({
        name: row.name,
        digest: row.digest,
        mediaType: manifest?.mediaType ?? '',
        artifactType: parsed?.artifactType ?? null,
        size,
        platforms: manifest && isIndexMediaType(manifest.mediaType) ? platformsOf(manifest.payload) : [],
        pushedAt: row.updatedAt,
        pushedBy: null,
        pulledAt: null,
      });
    }
    return { rows: summaries, more: rows.length > page.limit };
  }
}

/** A cached manifest, parsed; null when it does not parse (it was checked when cached). */
function parsedOrNull(payload: Uint8Array, mediaType: string): ParsedManifest | null {
  try {
    return parseManifest(payload, mediaType);
  } catch {
    return null;
  }
}
