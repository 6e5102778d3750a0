import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { answerPlainHttp, httpsServerOptions, reloadableTls, tlsFiles } from './tls.js';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { createApp } from './app.js';
import { registrySettings } from './composition.js';
import { limitConnections } from './http/connection-limits.js';
import { systemClock, type Clock } from './clock.js';
import { openAuth, type RegistryAuth } from './auth/setup.js';
import type { RegistryConfig } from './config/schema.js';
import { listenOn } from './listen.js';
import { textLine } from './log-format.js';
import type { UploadService } from './registry/uploads.js';
import { GcBusyError, type GarbageCollector } from './gc/collector.js';
import { openStores } from './stores.js';
import { RegistryMetrics } from './metrics/registry-metrics.js';
import { startDebugListener } from './metrics/debug-listener.js';

export interface RunningRegistry {
  server: Server;
  address: AddressInfo;
  logger: Logger;
  /** Stops accepting, lets in-flight requests finish (up to the drain timeout), then closes the stores. */
  shutdown(): Promise<void>;
  /** Reads the TLS files and the policy and htpasswd files again (SIGHUP). */
  reload(reason: string): void;
}

/** Log lines waiting for a reader that does not read (a stalled pipe) are dropped past this, not held without bound. */
const maxBufferedLogBytes = 16 * 1024 * 1024;

/** The process's logger, and how to end it before the process exits. */
export interface ProcessLogger {
  logger: Logger;
  /**
   * Writes what is buffered, waiting at most `waitMs` for the log's reader; past that the lines are
   * given up. (pino would otherwise write them synchronously at exit, which never ends while the
   * reader does not read: seen, a shutdown stuck for 27 minutes.)
   */
  end(waitMs: number): Promise<void>;
}

export function createProcessLogger(config: RegistryConfig): ProcessLogger {
  const destination = pino.destination({ dest: 1, sync: false, maxLength: maxBufferedLogBytes });
  return {
    logger: createLogger(config, destination),
    end: (waitMs) =>
      new Promise<void>((resolve) => {
        const giveUp = setTimeout(() => {
          destination.flushSync = () => undefined;
          resolve();
        }, waitMs);
        destination.once('finish', () => {
          clearTimeout(giveUp);
          resolve();
        });
        destination.end();
      }),
  };
}

export function createLogger(config: RegistryConfig, destination: pino.DestinationStream = pino.destination({ dest: 1, sync: false, maxLength: maxBufferedLogBytes })): Logger {
  return pino(
    {
      level: config.log.level,
      base: { service: 'registry' },
      // Level names and ISO times, as people and log collectors read them (Distribution writes the same).
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['req.headers.authorization', 'headers.authorization', 'password', 'token'], censor: '[redacted]' },
    },
    config.log.formatter === 'text' ? textStream(destination) : destination,
  );
}

/** log.formatter text: each JSON line pino writes, rewritten as a readable line on its way out. */
function textStream(destination: pino.DestinationStream): pino.DestinationStream {
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return destination.write(line);
      }
      return destination.write(textLine(entry));
    },
  };
}

/** What the start-up line says of who may do what: the source of grants, and the accounts of the database. */
function accessInForce(policyFile: string, accounts: ReadonlyArray<{ admin: boolean; disabled: boolean }>): Record<string, unknown> {
  return {
    grants: policyFile !== '' ? 'the rules of auth.policy' : 'every signed-in account may do everything (no auth.policy)',
    databaseAccounts: accounts.length,
    systemAdmins: accounts.filter((account) => account.admin && !account.disabled).length,
  };
}

/** Opens both stores, builds the app and listens on http.addr. */
export async function startRegistry(config: RegistryConfig, logger = createLogger(config)): Promise<RunningRegistry> {
  const settings = registrySettings(config);
  const { mirror, audit } = settings;
  const debug = config.http.debug;
  const metrics = debug.addr !== '' && debug.prometheus.enabled ? new RegistryMetrics({ processMetrics: true }) : null;
  const { storage, metadata, storageLocation, closeStorage } = await openStores(
    config,
    logger,
    metrics ? { onQuery: (seconds, engine) => metrics.queryDuration.observe({ engine }, seconds) } : {},
  );
  let auth: RegistryAuth;
  try {
    auth = await openAuth(config, metadata.db);
  } catch (error) {
    await metadata.close();
    closeStorage();
    throw error;
  }
  const lifecycle = { draining: false };
  const clock = systemClock;
  const { app, services, pulls } = createApp({
    clock,
    storage,
    metadata: metadata.db,
    tagChanges: metadata.tagChanges,
    logger,
    settings,
    options: { trustProxy: config.http.trustproxy, accessLog: !config.log.accesslog.disabled, ui: config.ui.enabled },
    auth,
    lifecycle,
    ...(metrics ? { metrics } : {}),
  });
  const tls = tlsFiles(config);
  const server = tls ? createHttpsServer(httpsServerOptions(tls), app.callback()) : createServer(app.callback());
  const certificates = tls ? reloadableTls(server as HttpsServer, tls, logger) : null;
  if (tls) answerPlainHttp(server as HttpsServer);
  // Large blobs stream for as long as they need: a body is judged by its rate (http.bodytimeout,
  // http.bodyminrate), not by how long it takes; a stalled header phase is cut off.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  limitConnections(server, { total: config.http.maxconnections, perAddress: config.http.trustproxy ? 0 : config.http.maxconnectionsperaddress }, logger);
  await listenOn(server, config.http.addr, 'http.addr');
  const address = server.address() as AddressInfo;
  const debugListener = metrics ? await startDebugListener(debug.addr, debug.prometheus.path, metrics, logger) : null;
  logger.info(
    {
      address: address.address,
      port: address.port,
      storage: storageLocation,
      database: metadata.engine,
      auth: config.auth.mode,
      ...(auth.accountFiles ? { policyFile: auth.accountFiles.files.policy || null, htpasswdFile: auth.accountFiles.files.htpasswd || null } : {}),
      ...(auth.databaseAccounts ? accessInForce(auth.accountFiles?.files.policy ?? '', [...auth.databaseAccounts.current.values()]) : {}),
      ...(auth.signingKey ? { tokenSigningKey: auth.signingKey.file, tokenSigningKeyGenerated: auth.signingKey.generated } : {}),
      tls: tls ? { certificate: tls.certificate, clientCertificates: tls.clientCas.length > 0, minimum: tls.minimumTls } : false,
      mirror: mirror ? mirror.upstreams.map((upstream) => `${upstream.name}=${upstream.url} (/v2/${upstream.prefix}/…)`) : [],
      ...(debugListener ? { metrics: { address: debugListener.address.address, port: debugListener.address.port, path: debug.prometheus.path } } : {}),
    },
    'registry listening',
  );
  if (config.auth.mode === 'none' && !isLoopback(address.address)) {
    logger.warn(
      { address: address.address, port: address.port },
      'auth is off (auth.mode none) and the registry listens beyond this machine: anyone who can reach the port can push, overwrite and delete images',
    );
  }
  if (auth.databaseAccounts && auth.accountFiles && auth.accountFiles.files.policy === '' && auth.accountFiles.files.htpasswd === '' && auth.databaseAccounts.current.size === 0) {
    logger.warn('auth is on and no account exists yet: make the first system admin with `registry accounts create NAME --admin --password-stdin`');
  }
  auth.accountFiles?.watch(logger);

  await services.notifications?.start();
  const stopPurging = scheduleUploadPurging(config, services.uploads, logger, clock);
  const stopCollecting = scheduleGarbageCollection(config, services.gc.collector, logger, clock);
  const stopPruning = audit.retentionMs > 0 ? repeat(clock, firstPruneDelayMs, pruneIntervalMs, logged(logger, 'pruning audit events failed', () => services.audit.prune(audit.retentionMs, logger))) : () => {};
  const stopRetention =
    config.retention.interval > 0 && services.retention.configured
      ? repeat(clock, firstCollectionDelayMs, config.retention.interval, logged(logger, 'retention run failed', () => services.retention.run({ dryRun: false })))
      : () => {};
  const stopPullWrites = pulls ? repeat(clock, audit.pullFlushMs, audit.pullFlushMs, () => pulls.flush()) : () => {};

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      lifecycle.draining = true;
      if (config.http.shutdowndelay > 0) {
        logger.info({ shutdownDelayMs: config.http.shutdowndelay }, 'shutting down: readiness now fails; serving on while load balancers notice');
        await new Promise((resolve) => setTimeout(resolve, config.http.shutdowndelay));
      }
      logger.info({ drainTimeoutMs: config.http.draintimeout }, 'shutting down: finishing in-flight requests');
      stopPurging();
      stopCollecting();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => {
        logger.warn('drain timeout reached: closing the remaining connections');
        server.closeAllConnections();
      }, config.http.draintimeout);
      await closed;
      clearTimeout(timer);
      debugListener?.server.close();
      certificates?.stop();
      auth.accountFiles?.stop();
      stopPruning();
      stopRetention();
      stopPullWrites();
      // Pulls of the requests that just finished are written before the database closes.
      await pulls?.flush();
      await services.notifications?.stop();
      await services.gc.collector.stop();
      await metadata.close();
      closeStorage();
      logger.info('registry stopped');
    })();
    return stopping;
  };
  const reload = (reason: string) => {
    certificates?.reload(reason);
    auth.accountFiles?.reload(reason, logger);
  };
  return { server, address, logger, shutdown, reload };
}

/** 127.0.0.0/8, ::1 and IPv4 loopback mapped into IPv6: reachable from this machine only. */
function isLoopback(address: string): boolean {
  return /^(127\.|::ffff:127\.)/.test(address) || address === '::1';
}

/** A scheduled task whose failure is logged rather than thrown. */
function logged(logger: Logger, failure: string, task: () => Promise<unknown>): () => Promise<void> {
  return () => task().then(
    () => undefined,
    (error: unknown) => logger.error({ err: error }, failure),
  );
}

/** Runs `task` after `firstDelayMs`, then `intervalMs` after each run ends, by the clock; returns a stop function. */
function repeat(clock: Clock, firstDelayMs: number, intervalMs: number, task: () => Promise<void>): () => void {
  const stopped = new AbortController();
  void (async () => {
    await clock.sleep(Math.min(firstDelayMs, intervalMs), stopped.signal);
    while (!stopped.signal.aborted) {
      await task();
      await clock.sleep(intervalMs, stopped.signal);
    }
  })();
  return () => stopped.abort();
}

/** Audit retention is applied a minute after start, then hourly. */
const firstPruneDelayMs = 60_000;
const pruneIntervalMs = 3_600_000;

/** The first purge runs this long after start, so a restart loop does not purge on every start. */
const firstPurgeDelayMs = 60_000;

/** Purges abandoned uploads now and then (storage.maintenance.uploadpurging); returns a stop function. */
function scheduleUploadPurging(config: RegistryConfig, uploads: UploadService, logger: Logger, clock: Clock): () => void {
  const purging = config.storage.maintenance.uploadpurging;
  if (!purging.enabled) return () => {};
  return repeat(clock, firstPurgeDelayMs, purging.interval, async () => {
    try {
      const { sessions, orphans } = await uploads.purge(clock.now() - purging.age, purging.dryrun);
      if (sessions.length > 0 || orphans.length > 0) {
        logger.info({ sessions: sessions.length, orphans: orphans.length, dryRun: purging.dryrun }, 'abandoned uploads purged');
      }
    } catch (error) {
      logger.error({ err: error }, 'upload purge failed');
    }
  });
}

/** The first collection runs this long after start. */
const firstCollectionDelayMs = 10 * 60_000;

/**
 * Collects garbage now and then (storage.maintenance.gc); every replica schedules it, the lease lets
 * one run at a time (the others skip that turn). Returns a stop function.
 */
function scheduleGarbageCollection(config: RegistryConfig, collector: GarbageCollector, logger: Logger, clock: Clock): () => void {
  const settings = config.storage.maintenance.gc;
  if (!settings.enabled) return () => {};
  return repeat(clock, firstCollectionDelayMs, settings.interval, async () => {
    try {
      await collector.run({ dryRun: settings.dryrun, untagged: settings.untagged, graceMs: settings.grace });
    } catch (error) {
      if (error instanceof GcBusyError) logger.debug({ holder: error.holder }, 'garbage collection skipped: another run holds the lease');
      else logger.error({ err: error }, 'garbage collection failed');
    }
  });
}
