import type { RegistryContext } from '../context.js';

/** GET /v2/: the API version check every client starts with. */
export async function apiVersionCheck(ctx: RegistryContext): Promise<void> {
  ctx.status = 200;
  ctx.body = {};
}
