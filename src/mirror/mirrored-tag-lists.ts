import { listMirrorTags } from '../metadata/mirror.js';
import { RegistryError } from '../oci/errors.js';
import { maxManifestBytes } from '../oci/manifest.js';
import type { RegistryStores } from '../registry/context.js';
import type { MirrorTarget } from './addressing.js';
import { readLimited, upstreamRepository, type Upstreams } from './upstreams.js';

/** Tag lists of mirrored repositories: the upstream's, or the tags cached from it while it is away. */
export class MirroredTagLists {
  constructor(
    private readonly stores: RegistryStores,
    private readonly upstreams: Upstreams,
  ) {}

  /** Every tag name, in no particular order: the upstream's list, else the cached tags (counted as stale). */
  async names(target: MirrorTarget): Promise<string[]> {
    try {
      return await this.upstream(target);
    } catch (error) {
      if (!(error instanceof RegistryError && error.code === 'UNAVAILABLE')) throw error;
      const cached = await listMirrorTags(this.stores.metadata, upstreamRepository(target));
      if (cached.length === 0) throw error;
      this.upstreams.health(target).servedStale();
      return cached;
    }
  }

  /** Every tag of the upstream repository (its tags/list, page after page). */
  async upstream(target: MirrorTarget): Promise<string[]> {
    const tags: string[] = [];
    let path: string | null = `${target.repository}/tags/list?n=1000`;
    while (path) {
      const reply = await this.upstreams.ask(target, 'GET', path, undefined);
      if (reply.status === 404) {
        reply.body?.discard();
        throw new RegistryError('NAME_UNKNOWN', { message: `upstream ${target.upstream.name} has no repository ${target.repository}` });
      }
      const body = reply.body ? await readLimited(reply.body, maxManifestBytes) : null;
      if (reply.status !== 200 || !body) throw this.upstreams.unavailable(target, `it answered ${reply.status} for the tags of ${target.repository}`);
      const page = JSON.parse(body.toString('utf8')) as { tags?: unknown };
      if (Array.isArray(page.tags)) tags.push(...page.tags.filter((tag): tag is string => typeof tag === 'string'));
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(reply.headers.get('link') ?? '')?.[1];
      const nextUrl = next ? new URL(next, target.upstream.url) : null;
      path = nextUrl && nextUrl.pathname.startsWith('/v2/') ? `${nextUrl.pathname.slice('/v2/'.length)}${nextUrl.search}` : null;
    }
    return tags;
  }
}
