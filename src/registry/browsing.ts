import { findPushedAt, listRepositorySummaries, listTagRows, manifestPayloads, pulledSizes, repositoryTotals, type RepositorySort } from '../metadata/browsing.js';
import { findRepository } from '../metadata/repositories.js';
import { RegistryError } from '../oci/errors.js';
import { isIndexMediaType } from '../oci/media-types.js';
import type { RegistryStores } from './context.js';

export interface RepositorySummary {
  name: string;
  tags: number;
  /** Bytes of its manifests and of the blobs they name, shared layers once. */
  size: number;
  pushedAt: number | null;
  pushedBy: string | null;
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
  constructor(private readonly stores: RegistryStores) {}

  /** `last` is the previous page's last name, in either order (a page by push time goes on from that repository's push time). */
  async repositories(page: { sort: RepositorySort; limit: number; last?: string; contains?: string }): Promise<BrowsePage<RepositorySummary>> {
    const { last, ...rest } = page;
    let after: { name: string; pushedAt: number | null } | undefined;
    if (last !== undefined) {
      const pushed = page.sort === 'pushed' ? await findPushedAt(this.stores.metadata, last) : undefined;
      after = { name: last, pushedAt: pushed?.pushedAt ?? null };
    }
    const rows = await listRepositorySummaries(this.stores.metadata, { ...rest, ...(after ? { after } : {}), limit: page.limit + 1 });
    const shown = rows.slice(0, page.limit);
    const totals = await repositoryTotals(this.stores.metadata, shown.map((row) => row.id));
    return {
      rows: shown.map((row) => ({ name: row.name, ...(totals.get(row.id) ?? { tags: 0, size: 0 }), pushedAt: row.pushedAt, pushedBy: row.pushedBy })),
      more: rows.length > page.limit,
    };
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
}
