import type { Logger } from 'pino';
import type { Store } from '../../health/readiness.js';
import { databaseFailureOf } from '../../metadata/database.js';
import { errorEnvelope, RegistryError } from '../../oci/errors.js';
import { storageFailureOf, StorageUnavailableError } from '../../storage/driver.js';
import type { RegistryContext } from '../context.js';
import { BodyTooSlowError } from './body-rate.js';

const apiVersionHeader = ['Docker-Distribution-API-Version', 'registry/2.0'] as const;

/** A request no route handled: the router leaves 404, or 405/501 with an Allow header. */
function unroutedRequestError(ctx: RegistryContext): RegistryError {
  if (ctx.status === 405 || ctx.status === 501) {
    return new RegistryError(ctx.status === 405 ? 'UNSUPPORTED' : 'NOT_IMPLEMENTED', { headers: { Allow: ctx.response.get('Allow') } });
  }
  return new RegistryError('NOT_FOUND');
}

/** Known HTTP errors from Koa and the router, mapped onto the catalogue. */
function toRegistryError(error: unknown): RegistryError | undefined {
  if (error instanceof RegistryError) return error;
  if (error instanceof StorageUnavailableError) {
    return new RegistryError('UNAVAILABLE', { message: 'blob storage is unavailable; try again later', headers: { 'Retry-After': '5' } });
  }
  if (error instanceof BodyTooSlowError) return new RegistryError('REQUEST_TIMEOUT', { message: error.message });
  const status = (error as { status?: unknown; expose?: unknown })?.status;
  if (typeof status !== 'number' || !(error as { expose?: unknown }).expose) return undefined;
  const headers = (error as { headers?: Record<string, string> }).headers ?? {};
  if (status === 405) return new RegistryError('UNSUPPORTED', { headers });
  if (status === 501) return new RegistryError('NOT_IMPLEMENTED', { headers });
  if (status === 404) return new RegistryError('NOT_FOUND');
  if (status === 413) return new RegistryError('TOO_LARGE');
  return undefined;
}

/**
 * A failure that comes from the state of a store, not from the request: no space left (507, and the
 * store's readiness fails until writes go through again), the database unreachable or too slow, or
 * this process out of file handles (503 with Retry-After). Logged here, with the cause named.
 */
function storeStateError(caught: unknown, logger: Logger, requestId: string, reportFull: (store: Store, code: string) => void): RegistryError | undefined {
  const storage = storageFailureOf(caught);
  const database = storage ? null : databaseFailureOf(caught);
  const full = storage?.kind === 'full' ? { store: 'storage' as const, code: storage.code } : database?.kind === 'full' ? { store: 'database' as const, code: database.code } : null;
  if (full) {
    reportFull(full.store, full.code);
    logger.error({ err: caught, requestId, store: full.store, code: full.code }, `write failed: the ${full.store === 'storage' ? 'blob storage' : 'metadata database'} has no space left (${full.code})`);
    return new RegistryError('INSUFFICIENT_STORAGE', { message: 'the registry has no space left to store this; try again later', headers: { 'Retry-After': '60' } });
  }
  if (database?.kind === 'unavailable') {
    logger.warn({ err: caught, requestId, code: database.code }, `metadata database unavailable (${database.code})`);
    return new RegistryError('UNAVAILABLE', { message: 'the metadata database is unavailable; try again later', headers: { 'Retry-After': '5' } });
  }
  if (storage?.kind === 'exhausted') {
    logger.warn({ err: caught, requestId, code: storage.code }, `out of file handles (${storage.code}): raise the limit (ulimit -n) or lower http.maxconnections`);
    return new RegistryError('UNAVAILABLE', { message: 'the registry is busy; try again later', headers: { 'Retry-After': '1' } });
  }
  return undefined;
}

/**
 * The one place that writes error responses: the OCI envelope with the catalogue's status. Anything
 * unexpected becomes 500 UNKNOWN, logged with its stack, its message never sent to the client.
 */
export function errorEnvelopeMiddleware(logger: Logger, stores: { reportFull(store: Store, code: string): void }) {
  return async function writeErrors(ctx: RegistryContext, next: () => Promise<void>): Promise<void> {
    ctx.set(...apiVersionHeader);
    try {
      await next();
      if (ctx.body === undefined && !ctx.state.route) throw unroutedRequestError(ctx);
    } catch (caught) {
      let error = toRegistryError(caught) ?? storeStateError(caught, logger, ctx.state.requestId, (store, code) => stores.reportFull(store, code));
      if (caught instanceof StorageUnavailableError) {
        logger.warn({ err: caught, requestId: ctx.state.requestId }, 'blob storage unavailable');
      }
      if (!error) {
        if (ctx.req.destroyed && ctx.req.readableAborted) {
          logger.debug({ requestId: ctx.state.requestId, method: ctx.method, path: ctx.path }, 'client went away during the request');
        } else {
          logger.error({ err: caught, requestId: ctx.state.requestId }, 'request failed');
        }
        error = new RegistryError('UNKNOWN');
      }
      if (error.status === 403) ctx.state.refusal = error.message;
      if (ctx.headerSent) return;
      for (const name of ctx.res.getHeaderNames()) ctx.res.removeHeader(name);
      ctx.set(...apiVersionHeader);
      ctx.set('X-Request-Id', ctx.state.requestId);
      // The rest of a body that will not be read is not waited for: the connection ends with the answer.
      if (!ctx.req.complete) ctx.set('Connection', 'close');
      for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value);
      ctx.status = error.status;
      ctx.body = errorEnvelope(error);
    }
  };
}
