import type { MirrorCacheImport } from '../../mirror/cache-import.js';
import type { MirrorTarget } from '../../mirror/addressing.js';
import { parseDigest } from '../../oci/digest.js';
import { RegistryError } from '../../oci/errors.js';
import { maxManifestBytes } from '../../oci/manifest.js';
import type { RegistryContext } from '../context.js';
import { decodeSegment, queryParameter, readManifestBody, requestBody, requestOrigin, respondEmpty } from '../request-parts.js';
import { parseContentLength } from '../range.js';
import type { RouteParams } from '../route-types.js';

/**
 * The upstream repository a cache-import request names: `/api/v1/mirror/cache/<repository>/…?ns=<upstream>`,
 * the repository as the upstream names it and the upstream by its name in mirror.upstreams.
 */
function cacheTarget(ctx: RegistryContext, params: RouteParams): { upstream: string; repository: string } {
  const ns = queryParameter(ctx, 'ns');
  const target: MirrorTarget | null = params.mirror;
  if (!ns || !target || target.addressedBy !== 'ns' || target.upstream.name !== ns) {
    throw new RegistryError('NAME_UNKNOWN', {
      message: ns ? `this registry has no upstream named ${ns} (mirror.upstreams)` : 'name the upstream with ?ns=<name in mirror.upstreams>',
      detail: { name: params.repository, upstream: ns ?? null },
    });
  }
  return { upstream: target.upstream.name, repository: target.repository };
}

/**
 * The operator API that fills a mirror cache with content carried in (`registry import --to`), since
 * pushes into mirrored names are refused: a blob's presence, a blob, a manifest by tag or digest.
 */
export function mirrorCacheHandlers(cache: MirrorCacheImport) {
  return {
    /** GET …/blobs/<digest>: 200 {digest, size} when the registry holds the bytes (nothing is sent again). */
    async blobStatus(ctx: RegistryContext, params: RouteParams): Promise<void> {
      cacheTarget(ctx, params);
      const digest = parseDigest(decodeSegment(params.reference)).value;
      if (!(await cache.holdsBlob(digest))) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest } });
      ctx.body = { digest };
    },

    /** PUT …/blobs/<digest>: the bytes, streamed and verified; 201. */
    async putBlob(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const from = cacheTarget(ctx, params);
      const digest = parseDigest(decodeSegment(params.reference)).value;
      const body = requestBody(ctx);
      if (!body) throw new RegistryError('BLOB_UPLOAD_INVALID', { message: 'a blob PUT needs the bytes as its body' });
      ctx.state.bytesReceived = await cache.putBlob(from, digest, parseContentLength(ctx.get('content-length') || undefined), body);
      ctx.set('Docker-Content-Digest', digest);
      respondEmpty(ctx, 201);
    },

    /** PUT …/manifests/<tag or digest>?seen=<ISO time the tag was seen upstream>: 201 {digest, tag}. */
    async putManifest(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const from = cacheTarget(ctx, params);
      const seenText = queryParameter(ctx, 'seen');
      const seenAt = seenText === undefined ? undefined : Date.parse(seenText);
      if (seenAt !== undefined && !Number.isFinite(seenAt)) throw new RegistryError('PARAMETER_INVALID', { message: 'seen must be an ISO 8601 time', detail: { parameter: 'seen', value: seenText?.slice(0, 50) } });
      const payload = await readManifestBody(ctx, maxManifestBytes);
      ctx.state.bytesReceived = payload.length;
      const result = await cache.putManifest(from, decodeSegment(params.reference), payload, ctx.get('content-type') || undefined, seenAt, requestOrigin(ctx));
      ctx.set('Docker-Content-Digest', result.digest);
      ctx.status = 201;
      ctx.body = result;
    },
  };
}
