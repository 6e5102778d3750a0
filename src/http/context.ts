import type { RouterContext } from '@koa/router';
import type { RequestGrant } from '../auth/access-control.js';
import type { BlobService } from '../registry/blobs.js';
import type { ListingService } from '../registry/listings.js';
import type { BrowsingService } from '../registry/browsing.js';
import type { ManifestService } from '../registry/manifests.js';
import type { ReferrersService } from '../registry/referrers.js';
import type { UploadService } from '../registry/uploads.js';
import type { MirrorCacheImport } from '../mirror/cache-import.js';
import type { GarbageCollector } from '../gc/collector.js';
import type { MetadataDb } from '../metadata/database.js';
import type { AuditService } from '../audit/audit-service.js';
import type { RetentionService } from '../retention/retention-service.js';
import type { NotificationDeliverer } from '../notifications/deliverer.js';
import type { Readiness } from '../health/readiness.js';
import type { MirrorService } from '../mirror/mirror-service.js';
import type { AccountService } from '../auth/account-service.js';
import type { ProjectService } from '../auth/project-service.js';
import type { RepositoryContents } from '../mirror/mirrored-content.js';

/** What middleware and handlers record about a request, read by the request log. */
export interface RegistryState {
  requestId: string;
  /** Name of the matched route, e.g. `blob.get`. */
  route?: string;
  repository?: string;
  /** Request body bytes taken in, where a handler streamed one. */
  bytesReceived?: number;
  /** The account the request proved (auth on), for the log. */
  user?: string;
  /** Why the request was refused (403), for the log. */
  refusal?: string;
  /** What the request may do, as auth found it. */
  grant?: RequestGrant;
}

export type RegistryContext = RouterContext<RegistryState>;

/** Garbage collection as the HTTP API starts it. */
export interface GcService {
  collector: GarbageCollector;
  metadata: MetadataDb;
  /** The settings of runs started over HTTP (storage.maintenance.gc). */
  defaults: { graceMs: number; untagged: boolean };
}

/** The registry services handlers call. */
export interface RegistryServices {
  blobs: BlobService;
  uploads: UploadService;
  manifests: ManifestService;
  referrers: ReferrersService;
  listings: ListingService;
  /** The web UI's repository summaries and tag rows. */
  browsing: BrowsingService;
  /** The pull-through mirror, when upstreams are configured. */
  mirror: MirrorService | null;
  /** Accounts kept in the database (the accounts API and command). */
  accounts: AccountService;
  /** Projects and their members (the projects API). */
  projects: ProjectService;
  /** What a request's name reads, local or mirrored: the read handlers go through it. */
  content: RepositoryContents;
  /** Imports into the mirror cache (bundles carried to an offline site), when upstreams are configured. */
  mirrorCache: MirrorCacheImport | null;
  /** Garbage collection, started over HTTP by operators. */
  gc: GcService;
  /** The audit log: events, tag histories, restores. */
  audit: AuditService;
  /** Retention policies, applied over HTTP by operators. */
  retention: RetentionService;
  /** Webhook delivery, when endpoints are configured. */
  notifications: NotificationDeliverer | null;
  /** The probes' view of the process (draining once SIGTERM arrived) and of the stores (full once a write ran out of space). */
  health: Readiness;
}
