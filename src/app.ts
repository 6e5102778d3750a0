import Koa from 'koa';
import type { Logger } from 'pino';
import { noAuth, type RegistryAuth } from './auth/setup.js';
import type { MetadataDb } from './metadata/database.js';
import type { RegistryContext, RegistryServices, RegistryState } from './http/context.js';
import { errorEnvelopeMiddleware } from './http/middleware/errors.js';
import { bodyRateMiddleware, type BodyRateLimit } from './http/middleware/body-rate.js';
import type { UploadLimits } from './metadata/uploads.js';
import type { RegistryConfig } from './config/schema.js';
import { requestLogMiddleware } from './http/middleware/request-log.js';
import { buildRouter } from './http/router.js';
import { registryRoutes } from './http/routes.js';
import { BlobService } from './registry/blobs.js';
import { ListingService } from './registry/listings.js';
import { BrowsingService } from './registry/browsing.js';
import { UiAssets } from './ui/assets.js';
import type { TagChanges } from './metadata/tag-changes.js';
import { createTagCaches } from './registry/tag-cache.js';
import { ManifestService } from './registry/manifests.js';
import { ReferrersService } from './registry/referrers.js';
import { UploadService } from './registry/uploads.js';
import type { StorageDriver } from './storage/driver.js';
import { GarbageCollector } from './gc/collector.js';
import { MirrorCacheImport } from './mirror/cache-import.js';
import { MirrorService } from './mirror/mirror-service.js';
import type { MirrorSettings } from './mirror/settings.js';
import { loopGuardMiddleware } from './http/middleware/loop-guard.js';
import { Readiness, type Lifecycle } from './health/readiness.js';
import { requestMetricsMiddleware } from './http/middleware/request-metrics.js';
import { meteredStorage } from './metrics/metered-storage.js';
import type { RegistryMetrics } from './metrics/registry-metrics.js';
import { registerServiceMetrics } from './metrics/service-metrics.js';
import { AuditService } from './audit/audit-service.js';
import { PullRecorder } from './audit/pull-recorder.js';
import { noImmutableTags, type ImmutableTags } from './registry/immutable-tags.js';
import { RetentionService } from './retention/retention-service.js';
import { NotificationDeliverer } from './notifications/deliverer.js';
import { NotificationPayloads } from './notifications/payload.js';
import type { NotificationEndpointSettings } from './config/notification-endpoints.js';
import type { RetentionPolicySettings } from './config/retention-policies.js';
import { defaultAuditSettings, type AuditSettings } from './audit/settings.js';
import { systemClock, type Clock } from './clock.js';

/** How a response stream fails when the client has closed its connection. */
const clientGoneCodes = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

export interface AppDependencies {
  storage: StorageDriver;
  metadata: MetadataDb;
  /** When tags change (MetadataDatabase.tagChanges): answers by tag are kept in memory; without it, every one asks the database. */
  tagChanges?: TagChanges;
  logger: Logger;
  options: {
    deleteEnabled: boolean;
    /** Trust X-Forwarded-* headers (http.trustproxy). */
    trustProxy?: boolean;
    /** One info line per request (log.accesslog.disabled off); on when absent. */
    accessLog?: boolean;
    /** Serve the web UI at /ui/ (ui.enabled); off when absent. */
    ui?: boolean;
  };
  /** Access control and the built-in token service; open to all when absent. */
  auth?: RegistryAuth;
  /** Upstreams to mirror (pull-through cache); none when absent. */
  mirror?: MirrorSettings | null;
  /** Settings of garbage collection runs started over HTTP (storage.maintenance.gc); a day's grace by default. */
  gc?: { graceMs: number; untagged: boolean };
  /** What the audit log records (audit.*); tag changes only, by default. */
  audit?: AuditSettings;
  /** Tags that may not move or go (tags.immutable); none by default. */
  immutableTags?: ImmutableTags;
  /** Retention policies (retention.policies); none by default. */
  retentionPolicies?: readonly RetentionPolicySettings[];
  /** Prometheus metrics (http.debug.prometheus); none when absent. */
  metrics?: RegistryMetrics;
  /** Set draining by the server at SIGTERM: /readyz then answers 503. */
  lifecycle?: Lifecycle;
  /** Webhook receivers (notifications.*); none by default. */
  notifications?: { endpoints: readonly NotificationEndpointSettings[]; retentionMs: number };
  /** The registry's time: the system's by default; tests pass one they move. */
  clock?: Clock;
  /** How slowly a request body may come (http.bodytimeout, http.bodyminrate), and open uploads allowed (uploads.*); none by default. */
  limits?: { body: BodyRateLimit; uploads: UploadLimits };
}

/** The limits of a configuration: what createApp's `limits` takes. */
export function configuredLimits(config: RegistryConfig): { body: BodyRateLimit; uploads: UploadLimits } {
  return {
    body: { windowMs: config.http.bodytimeout, minBytesPerSecond: config.http.bodyminrate },
    uploads: { perRepository: config.uploads.maxperrepository, perOwner: config.uploads.maxperaccount },
  };
}

export interface RegistryApp {
  app: Koa<RegistryState>;
  services: RegistryServices;
  /** Counted pulls not yet written (audit.pulls): written on a schedule and at shutdown. */
  pulls: PullRecorder | null;
}

/** The Koa application with its middleware in order. It never listens: main.ts and tests do that. */
export function createApp(deps: AppDependencies): RegistryApp {
  const storage = deps.metrics ? meteredStorage(deps.storage, deps.metrics) : deps.storage;
  const clock = deps.clock ?? systemClock;
  const stores = { storage, metadata: deps.metadata, clock };
  const notifying = (deps.notifications?.endpoints.length ?? 0) > 0;
  // Every notification is an audit event: with receivers, pushes by digest and re-pushes are recorded too.
  const audit = { ...(deps.audit ?? defaultAuditSettings), ...(notifying ? { recordManifests: true, recordUnchanged: true } : {}) };
  const outbox = notifying ? new NotificationPayloads() : undefined;
  const pulls = audit.recordPulls ? new PullRecorder(deps.metadata, audit.instance, deps.logger, clock, outbox) : null;
  const tagCaches = deps.tagChanges ? createTagCaches(deps.tagChanges) : undefined;
  const blobs = new BlobService(stores, { deleteEnabled: deps.options.deleteEnabled, audit, ...(outbox ? { outbox } : {}) });
  const manifests = new ManifestService(stores, {
    deleteEnabled: deps.options.deleteEnabled,
    audit,
    ...(pulls ? { pulls } : {}),
    ...(deps.immutableTags ? { immutable: deps.immutableTags } : {}),
    ...(outbox ? { outbox } : {}),
    ...(tagCaches ? { tagCaches } : {}),
  });
  const listedUpstreams = deps.mirror?.upstreams.map((upstream) => ({ name: upstream.name, prefix: upstream.prefix })) ?? [];
  const listings = new ListingService(stores, undefined, tagCaches?.tagLists, listedUpstreams);
  const collector = new GarbageCollector(stores, deps.logger, deps.mirror ?? null, audit.timeMachineMs);
  const gcDefaults = deps.gc ?? { graceMs: 24 * 3_600_000, untagged: false };
  const referrers = new ReferrersService(stores);
  const services: RegistryServices = {
    blobs,
    uploads: new UploadService(stores, deps.limits?.uploads),
    manifests,
    referrers,
    listings,
    browsing: new BrowsingService(stores, listedUpstreams),
    mirror: deps.mirror ? new MirrorService(stores, { manifests, blobs, listings, referrers }, deps.mirror, deps.logger) : null,
    mirrorCache: deps.mirror ? new MirrorCacheImport(stores, audit.instance) : null,
    gc: { collector, metadata: deps.metadata, defaults: gcDefaults },
    audit: new AuditService(deps.metadata, manifests, clock),
    health: new Readiness({ storage, metadata: deps.metadata }, deps.lifecycle ?? { draining: false }, audit.instance, clock),
    notifications: notifying && deps.notifications ? new NotificationDeliverer(deps.metadata, deps.notifications.endpoints, deps.notifications.retentionMs, deps.logger, clock) : null,
    retention: new RetentionService(deps.metadata, manifests, deps.retentionPolicies ?? [], deps.immutableTags ?? noImmutableTags, collector, gcDefaults.graceMs, deps.logger, clock),
  };
  const app = new Koa<RegistryState>({ proxy: deps.options.trustProxy ?? false });
  // Errors in the middleware chain are logged by the error middleware; what reaches Koa's own handler
  // is a response stream failing after its headers were sent. The request itself is done by then (a
  // GET's empty body has ended): whether the client went away is whether its socket did.
  app.on('error', (error: NodeJS.ErrnoException, ctx?: RegistryContext) => {
    if (ctx && (clientGoneCodes.has(error.code ?? '') || ctx.req.socket.destroyed)) {
      deps.logger.debug({ requestId: ctx.state.requestId, method: ctx.method, path: ctx.path, code: error.code }, 'client went away during the response');
    } else {
      deps.logger.warn({ err: error, ...(ctx ? { requestId: ctx.state.requestId, path: ctx.path } : {}) }, 'response stream failed');
    }
  });
  const auth = deps.auth ?? noAuth;
  const metrics = deps.metrics;
  const router = buildRouter(registryRoutes(services, auth.tokens, deps.options.ui ? new UiAssets() : null), { ...auth, ...(metrics ? { onAuth: (outcome) => metrics.auth.inc({ outcome }) } : {}) }, services.mirror?.addressing ?? null);
  if (metrics) {
    registerServiceMetrics(metrics, services, deps.metadata);
    app.use(requestMetricsMiddleware(metrics));
  }
  app.use(requestLogMiddleware(deps.logger, { mirroring: Boolean(deps.mirror), accessLog: deps.options.accessLog ?? true }));
  app.use(errorEnvelopeMiddleware(deps.logger, services.health));
  if (deps.limits) app.use(bodyRateMiddleware(deps.limits.body, deps.logger));
  if (deps.mirror) app.use(loopGuardMiddleware(deps.mirror.instanceId));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return { app, services, pulls };
}
