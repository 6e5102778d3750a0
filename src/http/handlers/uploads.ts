import type { AccessEntry } from '../../auth/scopes.js';
import { isValidRepositoryName } from '../../oci/names.js';
import { uploadRangeHeader, type UploadStatus } from '../../registry/uploads.js';
import type { BlobDescriptor } from '../../registry/context.js';
import type { RegistryContext, RegistryServices } from '../context.js';
import { chunkDescription, queryParameter, requestBody, respondEmpty } from '../request-parts.js';
import type { RouteParams } from '../route-types.js';

function uploadLocation(status: UploadStatus): string {
  return `/v2/${status.repository}/blobs/uploads/${status.id}`;
}

function respondUploadInProgress(ctx: RegistryContext, status: UploadStatus, code: 202 | 204): void {
  ctx.set('Location', uploadLocation(status));
  ctx.set('Range', uploadRangeHeader(status.size));
  ctx.set('Docker-Upload-UUID', status.id);
  respondEmpty(ctx, code);
}

function respondBlobCreated(ctx: RegistryContext, repository: string, blob: BlobDescriptor): void {
  ctx.set('Location', `/v2/${repository}/blobs/${blob.digest}`);
  ctx.set('Docker-Content-Digest', blob.digest);
  respondEmpty(ctx, 201);
}

/**
 * A mount's source repository, read with pull: named in the 401 challenge of the POST so that a client
 * that follows the challenge (rather than asking for the source itself, as docker and skopeo do) gets
 * a token that can mount. A source that is not a valid name is left out (the mount then cannot happen).
 */
export function mountSourceAccess(ctx: RegistryContext): AccessEntry[] {
  const from = ctx.query.from;
  if (ctx.query.mount === undefined || typeof from !== 'string' || !isValidRepositoryName(from)) return [];
  return [{ type: 'repository', name: from, actions: ['pull'] }];
}

/** Whose uploads a new session counts among: the account, or for an anonymous client its address. */
function uploadOwner(ctx: RegistryContext): string {
  const account = ctx.state.grant?.account ?? '';
  return account !== '' ? account : `address:${ctx.ip}`;
}

export function uploadHandlers({ blobs, uploads }: RegistryServices) {
  return {
    /** POST: mount, monolithic upload (?digest=), or a new session. */
    async start(ctx: RegistryContext, { repository }: RouteParams): Promise<void> {
      const mount = queryParameter(ctx, 'mount');
      const from = queryParameter(ctx, 'from');
      // With auth on, a mount needs pull on a named source; without it the client just uploads.
      const grant = ctx.state.grant;
      const mayMount = !grant || grant.unrestricted || (from !== undefined && grant.allows('repository', from, 'pull'));
      if (mount !== undefined && mayMount) {
        const mounted = await blobs.mount(repository, mount, from);
        if (mounted) return respondBlobCreated(ctx, repository, mounted);
      }
      const digest = mount === undefined ? queryParameter(ctx, 'digest') : undefined;
      if (digest !== undefined) {
        const body = requestBody(ctx);
        const blob = await uploads.uploadWhole(repository, uploadOwner(ctx), digest, body, chunkDescription(ctx));
        ctx.state.bytesReceived = blob.size;
        return respondBlobCreated(ctx, repository, blob);
      }
      respondUploadInProgress(ctx, await uploads.start(repository, uploadOwner(ctx)), 202);
    },

    async status(ctx: RegistryContext, { repository, reference }: RouteParams): Promise<void> {
      respondUploadInProgress(ctx, await uploads.status(repository, reference), 204);
    },

    async patch(ctx: RegistryContext, { repository, reference }: RouteParams): Promise<void> {
      const chunk = chunkDescription(ctx);
      const body = requestBody(ctx);
      const status = body ? await uploads.append(repository, reference, body, chunk) : await uploads.status(repository, reference);
      ctx.state.bytesReceived = status.received ?? 0;
      respondUploadInProgress(ctx, status, 202);
    },

    async complete(ctx: RegistryContext, { repository, reference }: RouteParams): Promise<void> {
      const digest = queryParameter(ctx, 'digest') ?? '';
      const blob = await uploads.complete(repository, reference, digest, requestBody(ctx), chunkDescription(ctx));
      respondBlobCreated(ctx, repository, blob);
    },

    async cancel(ctx: RegistryContext, { repository, reference }: RouteParams): Promise<void> {
      await uploads.cancel(repository, reference);
      respondEmpty(ctx, 204);
    },
  };
}
