import Koa from 'koa';
import type { Logger } from 'pino';
import { noAuth, type RegistryAuth } from './auth/setup.js';
import type { PullRecorder } from './audit/pull-recorder.js';
import { systemClock, type Clock } from './clock.js';
import { buildServices, type RegistrySettings } from './composition.js';
import type { Lifecycle } from './health/readiness.js';
import type { RegistryContext, RegistryServices, RegistryState } from './http/context.js';
import { bodyRateMiddleware } from './http/middleware/body-rate.js';
import { errorEnvelopeMiddleware } from './http/middleware/errors.js';
import { loopGuardMiddleware } from './http/middleware/loop-guard.js';
import { requestLogMiddleware } from './http/middleware/request-log.js';
import { requestMetricsMiddleware } from './http/middleware/request-metrics.js';
import { buildRouter } from './http/router.js';
import { registryRoutes } from './http/routes.js';
import type { MetadataDb } from './metadata/database.js';
import type { TagChanges } from './metadata/tag-changes.js';
import type { RegistryMetrics } from './metrics/registry-metrics.js';
import { registerServiceMetrics } from './metrics/service-metrics.js';
import type { StorageDriver } from './storage/driver.js';
import { UiAssets } from './ui/assets.js';

/** How a response stream fails when the client has closed its connection. */
const clientGoneCodes = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

export interface AppDependencies {
  storage: StorageDriver;
  metadata: MetadataDb;
  /** What the configuration says about the services (registrySettings). */
  settings: RegistrySettings;
  /** When tags change (MetadataDatabase.tagChanges): answers by tag are kept in memory; without it, every one asks the database. */
  tagChanges?: TagChanges;
  logger: Logger;
  options: {
    /** Trust X-Forwarded-* headers (http.trustproxy). */
    trustProxy?: boolean;
    /** One info line per request (log.accesslog.disabled off); on when absent. */
    accessLog?: boolean;
    /** Serve the web UI at /ui/ (ui.enabled); off when absent. */
    ui?: boolean;
  };
  /** Access control and the built-in token service; open to all when absent. */
  auth?: RegistryAuth;
  /** Prometheus metrics (http.debug.prometheus); none when absent. */
  metrics?: RegistryMetrics;
  /** Set draining by the server at SIGTERM: /readyz then answers 503. */
  lifecycle?: Lifecycle;
  /** The registry's time: the system's by default; tests pass one they move. */
  clock?: Clock;
}

export interface RegistryApp {
  app: Koa<RegistryState>;
  services: RegistryServices;
  /** Counted pulls not yet written (audit.pulls): written on a schedule and at shutdown. */
  pulls: PullRecorder | null;
}

/** The Koa application with its middleware in order, over the services of the composition root. It never listens: main.ts and tests do that. */
export function createApp(deps: AppDependencies): RegistryApp {
  const { services, stores, pulls } = buildServices({
    stores: { storage: deps.storage, metadata: deps.metadata, clock: deps.clock ?? systemClock },
    logger: deps.logger,
    settings: deps.settings,
    ...(deps.tagChanges ? { tagChanges: deps.tagChanges } : {}),
    ...(deps.lifecycle ? { lifecycle: deps.lifecycle } : {}),
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    databaseAccounts: deps.auth?.databaseAccounts ?? null,
    accountFiles: deps.auth?.accountFiles ?? null,
  });
  const mirror = deps.settings.mirror;
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
    registerServiceMetrics(metrics, services, stores.metadata);
    app.use(requestMetricsMiddleware(metrics));
  }
  app.use(requestLogMiddleware(deps.logger, { mirroring: Boolean(mirror), accessLog: deps.options.accessLog ?? true }));
  app.use(errorEnvelopeMiddleware(deps.logger, services.health));
  app.use(bodyRateMiddleware(deps.settings.limits.body, deps.logger));
  if (mirror) app.use(loopGuardMiddleware(mirror.instanceId));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return { app, services, pulls };
}
