import type { Logger } from 'pino';
import { AuditService } from './audit/audit-service.js';
import { AccountService } from './auth/account-service.js';
import type { DatabaseAccounts } from './auth/database-accounts.js';
import type { Accounts } from './auth/account-files.js';
import { ProjectService } from './auth/project-service.js';
import { DirectoryChanges } from './auth/directory-changes.js';
import { PullRecorder } from './audit/pull-recorder.js';
import { auditSettings, type AuditSettings } from './audit/settings.js';
import type { NotificationEndpointSettings } from './config/notification-endpoints.js';
import type { RetentionPolicySettings } from './config/retention-policies.js';
import type { RegistryConfig } from './config/schema.js';
import { GarbageCollector } from './gc/collector.js';
import { Readiness, type Lifecycle } from './health/readiness.js';
import type { RegistryServices } from './http/context.js';
import type { BodyRateLimit } from './http/middleware/body-rate.js';
import type { TagChanges } from './metadata/tag-changes.js';
import type { UploadLimits } from './metadata/uploads.js';
import { meteredStorage } from './metrics/metered-storage.js';
import type { RegistryMetrics } from './metrics/registry-metrics.js';
import { MirrorCacheImport } from './mirror/cache-import.js';
import { MirrorService } from './mirror/mirror-service.js';
import { RepositoryContents } from './mirror/mirrored-content.js';
import { mirrorSettings, type MirrorSettings } from './mirror/settings.js';
import { NotificationDeliverer } from './notifications/deliverer.js';
import { NotificationPayloads } from './notifications/payload.js';
import { noReceivers } from './metadata/audit.js';
import { BlobService } from './registry/blobs.js';
import { BrowsingService } from './registry/browsing.js';
import type { RegistryStores } from './registry/context.js';
import { ImmutableTags } from './registry/immutable-tags.js';
import { ListingService } from './registry/listings.js';
import { ManifestService } from './registry/manifests.js';
import { ReferrersService } from './registry/referrers.js';
import { createTagCaches } from './registry/tag-cache.js';
import { TagLedger } from './registry/tag-ledger.js';
import { UploadService } from './registry/uploads.js';
import { configuredPolicies } from './retention/plan.js';
import { RetentionService } from './retention/retention-service.js';

/**
 * The one composition root. The server, every command of the command line and the test helper
 * build their services here, from settings derived here from the configuration, so that a concern
 * wired into one (the webhook outbox, immutability, the audit settings) is wired into all: a
 * command that deletes tags notifies receivers as the server does.
 */

/** What the configuration says about the services, derived in one place. */
export interface RegistrySettings {
  deleteEnabled: boolean;
  /** Upstreams to mirror (pull-through cache); null without any. */
  mirror: MirrorSettings | null;
  /** Runs of garbage collection started over HTTP or by retention (storage.maintenance.gc). */
  gc: { graceMs: number; untagged: boolean };
  audit: AuditSettings;
  immutableTags: ImmutableTags;
  retentionPolicies: readonly RetentionPolicySettings[];
  notifications: { endpoints: readonly NotificationEndpointSettings[]; retentionMs: number };
  /** How slowly a request body may come (http.bodytimeout, http.bodyminrate), and open uploads allowed (uploads.*). */
  limits: { body: BodyRateLimit; uploads: UploadLimits };
}

export function registrySettings(config: RegistryConfig): RegistrySettings {
  return {
    deleteEnabled: config.storage.delete.enabled,
    mirror: mirrorSettings(config),
    gc: { graceMs: config.storage.maintenance.gc.grace, untagged: config.storage.maintenance.gc.untagged },
    audit: auditSettings(config),
    immutableTags: new ImmutableTags(config.tags.immutable),
    retentionPolicies: configuredPolicies(config),
    notifications: { endpoints: config.notifications.endpoints, retentionMs: config.notifications.retention },
    limits: {
      body: { windowMs: config.http.bodytimeout, minBytesPerSecond: config.http.bodyminrate },
      uploads: { perRepository: config.uploads.maxperrepository, perOwner: config.uploads.maxperaccount },
    },
  };
}

export interface ServiceDependencies {
  stores: RegistryStores;
  logger: Logger;
  settings: RegistrySettings;
  /** When tags change (MetadataDatabase.tagChanges): answers by tag are kept in memory; without it, every one asks the database. */
  tagChanges?: TagChanges;
  /** Set draining by the server at SIGTERM: /readyz then answers 503. */
  lifecycle?: Lifecycle;
  /** Prometheus metrics: storage calls are timed. */
  metrics?: RegistryMetrics;
  /** The copy of the accounts sign-in reads (auth on): read again after each change of an account. */
  databaseAccounts?: DatabaseAccounts | null;
  /** The accounts in force, files and database (auth on): a member must be one of them. */
  accountFiles?: { readonly current: Accounts } | null;
}

export interface BuiltServices {
  services: RegistryServices;
  /** The stores the services use (storage timed when there are metrics). */
  stores: RegistryStores;
  /** Counted pulls not yet written (audit.pulls): written on a schedule and at shutdown. */
  pulls: PullRecorder | null;
}

export function buildServices(deps: ServiceDependencies): BuiltServices {
  const { settings, logger } = deps;
  const storage = deps.metrics ? meteredStorage(deps.stores.storage, deps.metrics) : deps.stores.storage;
  const stores: RegistryStores = { ...deps.stores, storage };
  const { metadata, clock } = stores;
  const notifying = settings.notifications.endpoints.length > 0;
  // Every notification is an audit event: with receivers, pushes by digest and re-pushes are recorded too.
  const audit = { ...settings.audit, ...(notifying ? { recordManifests: true, recordUnchanged: true } : {}) };
  const outbox = notifying ? new NotificationPayloads() : noReceivers;
  const pulls = audit.recordPulls ? new PullRecorder(metadata, audit.instance, logger, clock, outbox) : null;
  const tagCaches = deps.tagChanges ? createTagCaches(deps.tagChanges) : undefined;
  const ledger = new TagLedger(stores, { instance: audit.instance, outbox, immutable: settings.immutableTags, tagCaches: tagCaches ?? null, logger });
  const blobs = new BlobService(stores, { deleteEnabled: settings.deleteEnabled, recordDeletes: audit.recordBlobs, ledger });
  const manifests = new ManifestService(stores, {
    deleteEnabled: settings.deleteEnabled,
    events: { recordUnchanged: audit.recordUnchanged, recordPush: audit.recordManifests },
    immutable: settings.immutableTags,
    ledger,
    ...(pulls ? { pulls } : {}),
    ...(tagCaches ? { tagCaches } : {}),
  });
  const listedUpstreams = settings.mirror?.upstreams.map((upstream) => ({ name: upstream.name, prefix: upstream.prefix })) ?? [];
  const listings = new ListingService(stores, undefined, tagCaches?.tagLists, listedUpstreams);
  const collector = new GarbageCollector(stores, logger, settings.mirror, audit.timeMachineMs, outbox);
  const referrers = new ReferrersService(stores);
  const browsing = new BrowsingService(stores, listedUpstreams);
  const directoryChanges = new DirectoryChanges(metadata, clock, { instance: audit.instance, outbox }, deps.databaseAccounts ?? null);
  const mirror = settings.mirror ? new MirrorService(stores, { manifests, blobs, listings, referrers }, settings.mirror, ledger, logger) : null;
  const services: RegistryServices = {
    blobs,
    uploads: new UploadService(stores, settings.limits.uploads),
    manifests,
    referrers,
    listings,
    browsing,
    mirror,
    content: new RepositoryContents({ manifests, blobs, listings, referrers, browsing }, mirror),
    mirrorCache: settings.mirror ? new MirrorCacheImport(stores, ledger) : null,
    gc: { collector, metadata, defaults: settings.gc },
    audit: new AuditService(metadata, manifests, clock),
    health: new Readiness({ storage, metadata }, deps.lifecycle ?? { draining: false }, audit.instance, clock),
    notifications: notifying ? new NotificationDeliverer(metadata, settings.notifications.endpoints, settings.notifications.retentionMs, logger, clock) : null,
    accounts: new AccountService(metadata, directoryChanges),
    projects: new ProjectService(metadata, clock, directoryChanges, deps.databaseAccounts ?? null, deps.accountFiles ?? null),
    retention: new RetentionService(metadata, manifests, settings.retentionPolicies, settings.immutableTags, collector, settings.gc.graceMs, logger, clock),
  };
  return { services, stores, pulls };
}
