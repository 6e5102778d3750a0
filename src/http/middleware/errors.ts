import type { Logger } from 'pino';
import { errorEnvelope, RegistryError } from '../../oci/errors.js';
import { StorageUnavailableError } from '../../storage/driver.js';
import type { RegistryContext } from '../context.js';

const apiVersionHeader = ['Docker-Distribution-API-Version', 'registry/2.0'] as const;

/** A request no route handled: the router leaves 404, or 405/501 with an Allow header. */
function unroutedRequestError(ctx: RegistryContext): RegistryError {
  if (ctx.status === 405 || ctx.status === 501) {
    return new RegistryError('UNSUPPORTED', { status: ctx.status, headers: { Allow: ctx.response.get('Allow') } });
  }
  return new RegistryError('NOT_FOUND');
}

/** Known HTTP errors from Koa and the router, mapped onto the catalogue. */
function toRegistryError(error: unknown): RegistryError | undefined {
  if (error instanceof RegistryError) return error;
  if (error instanceof StorageUnavailableError) {
    return new RegistryError('UNAVAILABLE', { message: 'blob storage is unavailable; try again later', headers: { 'Retry-After': '5' } });
  }
  const status = (error as { status?: unknown; expose?: unknown })?.status;
  if (typeof status !== 'number' || !(error as { expose?: unknown }).expose) return undefined;
  const headers = (error as { headers?: Record<string, string> }).headers ?? {};
  if (status === 405 || status === 501) return new RegistryError('UNSUPPORTED', { status, headers });
  if (status === 404) return new RegistryError('NOT_FOUND');
  if (status === 413) return new RegistryError('SIZE_INVALID', { status, message: 'request body too large' });
  return undefined;
}

/**
 * The one place that writes error responses: the OCI envelope with the catalogue's status. Anything
 * unexpected becomes 500 UNKNOWN, logged with its stack, its message never sent to the client.
 */
export function errorEnvelopeMiddleware(logger: Logger) {
  return async function writeErrors(ctx: RegistryContext, next: () => Promise<void>): Promise<void> {
    ctx.set(...apiVersionHeader);
    try {
      await next();
      if (ctx.body === undefined && !ctx.state.route) throw unroutedRequestError(ctx);
    } catch (caught) {
      let error = toRegistryError(caught);
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
      if (ctx.headerSent) return;
      for (const name of ctx.res.getHeaderNames()) ctx.res.removeHeader(name);
      ctx.set(...apiVersionHeader);
      ctx.set('X-Request-Id', ctx.state.requestId);
      for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value);
      ctx.status = error.status;
      ctx.body = errorEnvelope(error);
    }
  };
}
