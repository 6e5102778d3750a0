import { maxManifestBytes } from '../../oci/manifest.js';
import { acceptedMediaTypes } from '../../oci/media-types.js';
import type { ManifestContent } from '../../registry/manifests.js';
import type { RegistryContext, RegistryServices } from '../context.js';
import { decodeSegment, readManifestBody, requestOrigin, respondEmpty } from '../request-parts.js';
import type { RouteParams } from '../route-types.js';

function setManifestHeaders(ctx: RegistryContext, manifest: ManifestContent): void {
  ctx.set('Docker-Content-Digest', manifest.digest);
  ctx.set('ETag', `"${manifest.digest}"`);
}

/** If-None-Match naming the digest (quoted or not): the client's copy is current. */
function notModified(ctx: RegistryContext, digest: string): boolean {
  const header = ctx.get('if-none-match');
  return header !== '' && header.split(',').some((value) => [digest, `"${digest}"`].includes(value.trim()));
}

export function manifestHandlers({ manifests, content }: RegistryServices) {
  // Reads are passed on to the pull counter (audit.pulls), which decides what is a pull of a tag.
  const fetch = (ctx: RegistryContext, params: RouteParams) =>
    content
      .of(params, ctx.get('via') || undefined)
      .manifest(decodeSegment(params.reference), acceptedMediaTypes(ctx.req.headers.accept), { method: ctx.method === 'HEAD' ? 'HEAD' : 'GET', origin: () => requestOrigin(ctx) });

  return {
    async head(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const manifest = await fetch(ctx, params);
      setManifestHeaders(ctx, manifest);
      ctx.status = 200;
      ctx.type = manifest.mediaType;
      ctx.length = manifest.size;
    },

    async get(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const manifest = await fetch(ctx, params);
      setManifestHeaders(ctx, manifest);
      if (notModified(ctx, manifest.digest)) {
        ctx.status = 304;
        return;
      }
      ctx.status = 200;
      ctx.body = Buffer.from(manifest.payload);
      ctx.type = manifest.mediaType;
    },

    async put(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const payload = await readManifestBody(ctx, maxManifestBytes);
      ctx.state.bytesReceived = payload.length;
      const result = await manifests.put(params.repository, decodeSegment(params.reference), payload, ctx.get('content-type') || undefined, requestOrigin(ctx));
      ctx.set('Location', `/v2/${params.repository}/manifests/${result.digest}`);
      ctx.set('Docker-Content-Digest', result.digest);
      if (result.subject) ctx.set('OCI-Subject', result.subject);
      respondEmpty(ctx, 201);
    },

    async delete(ctx: RegistryContext, params: RouteParams): Promise<void> {
      await manifests.delete(params.repository, decodeSegment(params.reference), requestOrigin(ctx));
      respondEmpty(ctx, 202);
    },
  };
}
