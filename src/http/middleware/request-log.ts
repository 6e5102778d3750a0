import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { RegistryContext } from '../context.js';

const clientRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/** Gives each request an id (the client's X-Request-Id when sane) and writes one log line when it ends. */
export function requestLogMiddleware(logger: Logger) {
  return async function requestLog(ctx: RegistryContext, next: () => Promise<void>): Promise<void> {
    const started = process.hrtime.bigint();
    const offered = ctx.get('x-request-id');
    ctx.state.requestId = clientRequestId.test(offered) ? offered : randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    // Read now: once the client is gone the socket (and so ctx.ip) may no longer be there.
    const remote = ctx.ip;
    // Probes come every few seconds from every load balancer: at info level they would drown the log.
    const level = ctx.path === '/healthz' || ctx.path === '/readyz' ? 'debug' : 'info';
    ctx.res.once('close', () => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      logger[level](
        {
          requestId: ctx.state.requestId,
          method: ctx.method,
          path: ctx.path,
          // The query says which upstream (?ns=), digest or page a request meant; none of it is secret.
          ...(ctx.querystring ? { query: ctx.querystring.slice(0, 500) } : {}),
          route: ctx.state.route ?? null,
          repository: ctx.state.repository ?? null,
          user: ctx.state.user ?? null,
          status: ctx.res.statusCode,
          bytesIn: ctx.state.bytesReceived ?? 0,
          bytesOut: ctx.res.writableFinished ? (ctx.response.length ?? 0) : null,
          completed: ctx.res.writableFinished,
          durationMs: Math.round(durationMs * 100) / 100,
          remote,
        },
        'request',
      );
    });
    await next();
  };
}
