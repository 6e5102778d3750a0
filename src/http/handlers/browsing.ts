import type { RepositorySort } from '../../metadata/browsing.js';
import { invalidParameter as invalid } from '../../oci/errors.js';
import type { BrowsingService } from '../../registry/browsing.js';
import { catalogAccess } from '../../auth/scopes.js';
import type { RepositoryContents } from '../../mirror/mirrored-content.js';
import type { RegistryContext } from '../context.js';
import { pageSizeOf, pagination, queryParameter, setNextPageLink } from '../request-parts.js';
import type { RouteParams } from '../route-types.js';

const defaultPage = 50;
const maxPage = 1000;

const pageSizes = { default: defaultPage, max: maxPage };

/** The web UI's listings under /api/v1 (repositories: all with the catalog grant, else those the caller may pull; a repository's tags: pull), paged like the catalog. */
export function browsingHandlers(browsing: BrowsingService, content: RepositoryContents) {
  return {
    /** GET /api/v1/repositories?q=&sort=name|pushed&source=local|mirror&n=&last=: repositories with their source, tag count, size and last push. */
    async repositories(ctx: RegistryContext): Promise<void> {
      const sort = queryParameter(ctx, 'sort') || 'name';
      if (sort !== 'name' && sort !== 'pushed') throw invalid('sort', 'expected name or pushed', sort);
      const contains = (queryParameter(ctx, 'q') ?? '').trim().toLowerCase();
      if (contains.length > 255) throw invalid('q', 'longer than a repository name can be', contains);
      const limit = pageSizeOf(ctx, pageSizes);
      const { last } = pagination(ctx);
      const source = queryParameter(ctx, 'source');
      if (source !== undefined && source !== 'local' && source !== 'mirror') throw invalid('source', 'expected local or mirror', source);
      // Everything with the catalog grant (or auth off); otherwise what the caller may pull.
      const grant = ctx.state.grant;
      const everything = !grant || grant.unrestricted || grant.allows(catalogAccess.type, catalogAccess.name, '*');
      const page = await browsing.repositories({
        sort: sort as RepositorySort,
        limit,
        ...(last ? { last } : {}),
        ...(contains ? { contains } : {}),
        ...(source ? { source } : {}),
        ...(everything ? {} : { mayPull: (name: string) => grant.mayPull(name) }),
      });
      if (page.next !== null) setNextPageLink(ctx, { limit, last: page.next, keep: 'all' });
      ctx.body = { repositories: page.rows };
    },

    /** GET /api/v1/repositories/<name>/tags?glob=&n=&last=: tags with digest, media type, size, platforms, push and pull. */
    async tags(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const glob = queryParameter(ctx, 'glob') ?? '';
      if (glob.length > 128) throw invalid('glob', 'longer than a tag can be', glob);
      const limit = pageSizeOf(ctx, pageSizes);
      const { last } = pagination(ctx);
      const query = { limit, ...(last ? { last } : {}), ...(glob ? { glob } : {}) };
      const page = await content.of(params, undefined).tagTable(query);
      const lastShown = page.rows.at(-1);
      if (page.more && lastShown) setNextPageLink(ctx, { limit, last: lastShown.name, keep: 'all' });
      ctx.body = { name: params.repository, tags: page.rows };
    },
  };
}
