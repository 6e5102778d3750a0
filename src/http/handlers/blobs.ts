import { RegistryError } from '../../oci/errors.js';
import type { RegistryContext, RegistryServices } from '../context.js';
import { interpretRangeHeader } from '../range.js';
import { decodeSegment, requestOrigin, respondEmpty } from '../request-parts.js';
import type { RouteParams } from '../route-types.js';
import { respondWithStream } from '../send-stream.js';

function setContentHeaders(ctx: RegistryContext, blob: { digest: string }): void {
  ctx.set('Docker-Content-Digest', blob.digest);
  ctx.set('ETag', `"${blob.digest}"`);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Cache-Control', 'max-age=31536000');
  // Blob bytes are whatever was pushed: a browser must never read them as HTML or script.
  ctx.set('X-Content-Type-Options', 'nosniff');
}

export function blobHandlers({ blobs, content }: RegistryServices) {
  const contentOf = (ctx: RegistryContext, params: RouteParams) => content.of(params, ctx.get('via') || undefined);
  return {
    async head(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const blob = await contentOf(ctx, params).statBlob(decodeSegment(params.reference));
      setContentHeaders(ctx, blob);
      ctx.status = 200;
      ctx.type = 'application/octet-stream';
      ctx.length = blob.size;
    },

    async get(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const ranged = ctx.get('range') !== '';
      const opened = await contentOf(ctx, params).openBlob(decodeSegment(params.reference), { streamWhileFetching: !ranged });
      if (opened.kind === 'fetching') {
        // Bytes arriving from upstream, shared with every client asking meanwhile.
        setContentHeaders(ctx, opened);
        ctx.status = 200;
        ctx.body = opened.stream;
        ctx.type = 'application/octet-stream';
        if (opened.size !== null) ctx.length = opened.size;
        return;
      }
      const { blob } = opened;
      const wanted = interpretRangeHeader(ctx.get('range') || undefined, blob.size);
      if (wanted.kind === 'unsatisfiable') {
        throw new RegistryError('RANGE_INVALID', { headers: { 'Content-Range': `bytes */${blob.size}` } });
      }
      const redirect = await blobs.redirectURL(blob);
      if (redirect) {
        // As Distribution: the client fetches the bytes (and any range of them) from storage itself.
        ctx.set('Docker-Content-Digest', blob.digest);
        ctx.status = 307;
        ctx.set('Location', redirect);
        ctx.body = '';
        return;
      }
      const range = wanted.kind === 'partial' ? wanted.range : undefined;
      const stream = await blobs.read(blob, range);
      setContentHeaders(ctx, blob);
      ctx.status = range ? 206 : 200;
      respondWithStream(ctx, stream);
      ctx.type = 'application/octet-stream';
      if (range) {
        ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${blob.size}`);
        ctx.length = range.end - range.start + 1;
      } else {
        ctx.length = blob.size;
      }
    },

    async delete(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const digest = decodeSegment(params.reference);
      await blobs.delete(params.repository, digest, requestOrigin(ctx));
      ctx.set('Docker-Content-Digest', digest);
      respondEmpty(ctx, 202);
    },
  };
}
