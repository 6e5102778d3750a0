import type { Logger } from 'pino';
import type { RegistryContext } from '../context.js';

/** How slow a request body may arrive: at least `minBytesPerSecond` over each window of `windowMs` (0: no limit). */
export interface BodyRateLimit {
  windowMs: number;
  minBytesPerSecond: number;
}

/** The request body came too slowly (http.bodytimeout, http.bodyminrate): the request was cut off. */
export class BodyTooSlowError extends Error {
  constructor(readonly received: number, readonly windowMs: number) {
    super(`the request body sent ${received} bytes in ${windowMs / 1000} s, less than http.bodyminrate allows`);
    this.name = 'BodyTooSlowError';
  }
}

function expectsBody(ctx: RegistryContext): boolean {
  const length = ctx.get('content-length');
  return ctx.get('transfer-encoding') !== '' || (length !== '' && length !== '0');
}

/**
 * Cuts off a request whose body trickles in (a client sending a byte every few seconds holds a
 * connection, a file and an upload session for as long as it likes): at the end of each window,
 * if the body is not complete, the server was waiting for it (nothing of it is buffered unread) and
 * fewer bytes came than the minimum rate asks, the request is ended. Bytes held back because the
 * registry itself reads slowly (storage slower than the client) do not count against the client:
 * they sit unread, and the window is not judged. The client's connection is closed (no answer can
 * be sent before the body it is still sending); the log says why.
 */
export function bodyRateMiddleware(limit: BodyRateLimit, logger: Logger) {
  return async function limitBodyRate(ctx: RegistryContext, next: () => Promise<void>): Promise<void> {
    if (limit.windowMs <= 0 || limit.minBytesPerSecond <= 0 || !expectsBody(ctx)) return next();
    const request = ctx.req;
    const socket = request.socket;
    const minimum = (limit.minBytesPerSecond * limit.windowMs) / 1000;
    let readAtWindowStart = socket.bytesRead;
    const timer = setInterval(() => {
      const received = socket.bytesRead - readAtWindowStart;
      readAtWindowStart = socket.bytesRead;
      if (request.complete || request.destroyed) return clearInterval(timer);
      if (request.readableLength > 0 || received >= minimum) return;
      clearInterval(timer);
      logger.info({ requestId: ctx.state.requestId, received, windowMs: limit.windowMs, minimum }, 'request body too slow: the request is cut off (http.bodytimeout, http.bodyminrate)');
      request.destroy(new BodyTooSlowError(received, limit.windowMs));
    }, limit.windowMs);
    timer.unref();
    try {
      await next();
    } finally {
      clearInterval(timer);
    }
  };
}
