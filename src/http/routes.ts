import type { RegistryContext, RegistryServices } from './context.js';
import { apiVersionCheck } from './handlers/base.js';
import { blobHandlers } from './handlers/blobs.js';
import { listingHandlers } from './handlers/listings.js';
import { manifestHandlers } from './handlers/manifests.js';
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
  /** Whether group 1 is a repository name (validated before the handler runs). */
  scoped: boolean;
  handle(ctx: RegistryContext, params: RouteParams): Promise<void>;
}

// Names may hold slashes, so the name is everything before the fixed tail of each path.
const paths = {
  base: /^\/v2\/?$/,
  catalog: /^\/v2\/_catalog$/,
  manifest: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
  tags: /^\/v2\/(.+)\/tags\/list$/,
  referrers: /^\/v2\/(.+)\/referrers\/([^/]+)$/,
  blob: /^\/v2\/(.+)\/blobs\/([^/]+)$/,
  uploads: /^\/v2\/(.+)\/blobs\/uploads\/?$/,
  upload: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
} as const;

/** The route table: every endpoint, its method and its handler. */
export function registryRoutes(services: RegistryServices): Route[] {
  const blobs = blobHandlers(services);
  const uploads = uploadHandlers(services);
  const manifests = manifestHandlers(services);
  const listings = listingHandlers(services);
  const scoped = true;
  return [
    { name: 'base', method: 'GET', pattern: paths.base, scoped: false, handle: apiVersionCheck },
    { name: 'catalog', method: 'GET', pattern: paths.catalog, scoped: false, handle: listings.catalog },
    { name: 'blob.head', method: 'HEAD', pattern: paths.blob, scoped, handle: blobs.head },
    { name: 'blob.get', method: 'GET', pattern: paths.blob, scoped, handle: blobs.get },
    { name: 'blob.delete', method: 'DELETE', pattern: paths.blob, scoped, handle: blobs.delete },
    { name: 'upload.start', method: 'POST', pattern: paths.uploads, scoped, handle: uploads.start },
    { name: 'upload.status', method: 'GET', pattern: paths.upload, scoped, handle: uploads.status },
    { name: 'upload.patch', method: 'PATCH', pattern: paths.upload, scoped, handle: uploads.patch },
    { name: 'upload.complete', method: 'PUT', pattern: paths.upload, scoped, handle: uploads.complete },
    { name: 'upload.cancel', method: 'DELETE', pattern: paths.upload, scoped, handle: uploads.cancel },
    { name: 'manifest.head', method: 'HEAD', pattern: paths.manifest, scoped, handle: manifests.head },
    { name: 'manifest.get', method: 'GET', pattern: paths.manifest, scoped, handle: manifests.get },
    { name: 'manifest.put', method: 'PUT', pattern: paths.manifest, scoped, handle: manifests.put },
    { name: 'manifest.delete', method: 'DELETE', pattern: paths.manifest, scoped, handle: manifests.delete },
    { name: 'tags.list', method: 'GET', pattern: paths.tags, scoped, handle: listings.tags },
    { name: 'referrers.list', method: 'GET', pattern: paths.referrers, scoped, handle: listings.referrers },
  ];
}
