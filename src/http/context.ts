import type { RouterContext } from '@koa/router';
import type { BlobService } from '../registry/blobs.js';
import type { ListingService } from '../registry/listings.js';
import type { ManifestService } from '../registry/manifests.js';
import type { ReferrersService } from '../registry/referrers.js';
import type { UploadService } from '../registry/uploads.js';

/** What middleware and handlers record about a request, read by the request log. */
export interface RegistryState {
  requestId: string;
  /** Name of the matched route, e.g. `blob.get`. */
  route?: string;
  repository?: string;
  /** Request body bytes taken in, where a handler streamed one. */
  bytesReceived?: number;
}

export type RegistryContext = RouterContext<RegistryState>;

/** The registry services handlers call. */
export interface RegistryServices {
  blobs: BlobService;
  uploads: UploadService;
  manifests: ManifestService;
  referrers: ReferrersService;
  listings: ListingService;
}
