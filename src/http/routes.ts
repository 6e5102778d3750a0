import type { RegistryContext, RegistryServices } from './context.js';
import { apiVersionCheck } from './handlers/base.js';
import { blobHandlers } from './handlers/blobs.js';
import { uploadHandlers } from './handlers/uploads.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Path parts a route captures: the repository name (validated) and the last segment, raw. */
export interface RouteParams {
  repository: string;
  reference: string;
}

export interface Route {
  /** Appears in the request log. */
  name: string;
  method: HttpMethod;
  /** Matched against the raw path; group 1 is the repository name, group 2 the reference. */
  pattern: RegExp;
  handle(ctx: RegistryContext, params: RouteParams): Promise<void>;
}

// Names may hold slashes, so the name is everything before the fixed tail of each path.
const paths = {
  base: /^\/v2\/?$/,
  blob: /^\/v2\/(.+)\/blobs\/([^/]+)$/,
  uploads: /^\/v2\/(.+)\/blobs\/uploads\/?$/,
  upload: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
} as const;

/** The route table: every endpoint, its method and its handler. */
export function registryRoutes(services: RegistryServices): Route[] {
  const blobs = blobHandlers(services);
  const uploads = uploadHandlers(services);
  return [
    { name: 'base', method: 'GET', pattern: paths.base, handle: apiVersionCheck },
    { name: 'blob.head', method: 'HEAD', pattern: paths.blob, handle: blobs.head },
    { name: 'blob.get', method: 'GET', pattern: paths.blob, handle: blobs.get },
    { name: 'blob.delete', method: 'DELETE', pattern: paths.blob, handle: blobs.delete },
    { name: 'upload.start', method: 'POST', pattern: paths.uploads, handle: uploads.start },
    { name: 'upload.status', method: 'GET', pattern: paths.upload, handle: uploads.status },
    { name: 'upload.patch', method: 'PATCH', pattern: paths.upload, handle: uploads.patch },
    { name: 'upload.complete', method: 'PUT', pattern: paths.upload, handle: uploads.complete },
    { name: 'upload.cancel', method: 'DELETE', pattern: paths.upload, handle: uploads.cancel },
  ];
}
