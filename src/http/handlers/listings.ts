import { mediaTypes } from '../../oci/media-types.js';
import type { PageResult } from '../../registry/listings.js';
import type { RegistryContext, RegistryServices } from '../context.js';
import { decodeSegment, pagination, queryParameter, setNextPageLink } from '../request-parts.js';
import type { RouteParams } from '../route-types.js';

/** Distribution's next-page link: the path with `n` and `last` (and `ns`, which names a mirrored name's upstream). */
function linkNextPage(ctx: RegistryContext, result: PageResult): void {
  const last = result.entries.at(-1);
  if (result.more && last !== undefined) setNextPageLink(ctx, { limit: result.entries.length, last, keep: ['ns'] });
}

export function listingHandlers({ listings, content }: RegistryServices) {
  return {
    async tags(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const result = await content.of(params, ctx.get('via') || undefined).tags(pagination(ctx));
      linkNextPage(ctx, result);
      ctx.body = { name: params.repository, tags: result.entries };
    },

    async catalog(ctx: RegistryContext): Promise<void> {
      const result = await listings.catalog(pagination(ctx));
      linkNextPage(ctx, result);
      ctx.body = { repositories: result.entries };
    },

    async referrers(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const artifactType = queryParameter(ctx, 'artifactType') || undefined;
      const index = await content.of(params, ctx.get('via') || undefined).referrers(decodeSegment(params.reference), artifactType);
      if (artifactType) ctx.set('OCI-Filters-Applied', 'artifactType');
      ctx.body = index;
      ctx.type = mediaTypes.ociIndex;
    },
  };
}
