import { RegistryError } from '../../oci/errors.js';
import type { UiAssets } from '../../ui/assets.js';
import type { RegistryContext } from '../context.js';
import type { RouteParams } from '../route-types.js';

/**
 * Only this registry's own scripts, styles and API: no inline script, no other origin, no framing
 * (a restore or delete button cannot be clicked through another site's page).
 */
const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The web UI's files under /ui/ (the page, its script and style), and `/` and `/ui` sent to it. */
export function uiHandlers(assets: UiAssets) {
  return {
    async redirect(ctx: RegistryContext): Promise<void> {
      ctx.redirect('/ui/');
    },

    async asset(ctx: RegistryContext, params: RouteParams): Promise<void> {
      let asset;
      try {
        asset = await assets.find(params.reference);
      } catch (error) {
        throw new RegistryError('UNAVAILABLE', { message: (error as Error).message });
      }
      if (!asset) throw new RegistryError('NOT_FOUND', { message: `no web UI file ${params.reference}` });
      ctx.set('Content-Security-Policy', contentSecurityPolicy);
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('Referrer-Policy', 'no-referrer');
      // Small files: always revalidated, so an upgraded registry never serves yesterday's script.
      ctx.set('Cache-Control', 'no-cache');
      ctx.set('ETag', asset.etag);
      if (ctx.get('if-none-match') === asset.etag) {
        ctx.status = 304;
        return;
      }
      ctx.type = asset.contentType;
      ctx.body = asset.body;
    },
  };
}
