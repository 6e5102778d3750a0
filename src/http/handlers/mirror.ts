import type { MirrorService } from '../../mirror/mirror-service.js';
import { RegistryError } from '../../oci/errors.js';
import type { RegistryContext } from '../context.js';
import { pageSizeOf, pagination, queryParameter, setNextPageLink } from '../request-parts.js';

const defaultHistoryPage = 100;
const maxHistoryPage = 1000;

export function mirrorHandlers(mirror: MirrorService) {
  return {
    /** GET /api/v1/mirror/status: each upstream's reachability, last success and failure, cache counters. */
    async status(ctx: RegistryContext): Promise<void> {
      ctx.body = mirror.status();
    },

    /**
     * GET /api/v1/mirror/history?upstream=&repository=&tag=&n=&last=: mirrored tags first seen, moved
     * or gone upstream, newest first; `last` is the id of the last event of the previous page.
     */
    async history(ctx: RegistryContext): Promise<void> {
      const { last } = pagination(ctx);
      if (last !== undefined && !/^\d{1,15}$/.test(last)) {
        throw new RegistryError('PAGINATION_NUMBER_INVALID', { message: 'last must be the id of an event', detail: { last: last.slice(0, 50) } });
      }
      const filter = {
        upstream: queryParameter(ctx, 'upstream') || undefined,
        repository: queryParameter(ctx, 'repository') || undefined,
        tag: queryParameter(ctx, 'tag') || undefined,
      };
      const pageSize = pageSizeOf(ctx, { default: defaultHistoryPage, max: maxHistoryPage });
      const events = await mirror.tagHistory({ ...filter, before: last !== undefined ? Number(last) : undefined, limit: pageSize + 1 });
      const page = events.slice(0, pageSize);
      const lastShown = page.at(-1);
      if (events.length > pageSize && lastShown) setNextPageLink(ctx, { limit: pageSize, last: String(lastShown.id), keep: ['upstream', 'repository', 'tag'] });
      ctx.body = { events: page.map((event) => ({ ...event, at: new Date(event.at).toISOString() })) };
    },
  };
}
