import { RegistryError } from '../../oci/errors.js';
import type { BlobDescriptor } from '../../registry/context.js';
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

export function blobHandlers({ blobs, mirror }: RegistryServices) {
  return {
    async head(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const digest = decodeSegment(params.reference);
      const blob =
        params.mirror && mirror
          ? await mirror.statBlob(params.mirror, params.repository, digest, ctx.get('via') || undefined)
          : await blobs.stat(params.repository, digest);
      setContentHeaders(ctx, blob);
      ctx.status = 200;
      ctx.type = 'application/octet-stream';
      ctx.length = blob.size;
    },

    async get(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const digest = decodeSegment(params.reference);
      let blob: BlobDescriptor;
      if (params.mirror && mirror) {
        const ranged = ctx.get('range') !== '';
        const mirrored = await mirror.openBlob(params.mirror, params.repository, digest, ctx.get('via') || undefined, { streamWhileFetching: !ranged });
        if (mirrored.kind === 'fetching') {
          // Bytes arriving from upstream, shared with every client asking meanwhile.
          setContentHeaders(ctx, mirrored);
          ctx.status = 200;
          ctx.body = mirrored.stream;
          ctx.type = 'application/octet-stream';
          if (mirrored.size !== null) ctx.length = mirrored.size;
          return;
        }
        blob = mirrored.blob;
      } else {
        blob = await blobs.stat(params.repository, digest);
      }
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
