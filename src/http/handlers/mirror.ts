import type { MirrorService } from '../../mirror/mirror-service.js';
import type { RegistryContext } from '../context.js';

export function mirrorHandlers(mirror: MirrorService) {
  return {
    /** GET /api/v1/mirror/status: each upstream's reachability, last success and failure, cache counters. */
    async status(ctx: RegistryContext): Promise<void> {
      ctx.body = mirror.status();
    },
  };
}
