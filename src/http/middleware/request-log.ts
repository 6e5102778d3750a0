import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { withMirrorAnswer, type MirrorAnswer } from '../../mirror/answer-source.js';
import type { RegistryContext } from '../context.js';
import { plainAddress } from '../client-address.js';

const clientRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/** The query parameters that say what a request meant: the upstream (?ns=), a page, a digest, a mount. */
const loggedParameters = ['ns', 'n', 'last', 'digest', 'mount', 'from'];

function meaningfulQuery(ctx: RegistryContext): string | undefined {
  if (!ctx.querystring) return undefined;
  const kept = new URLSearchParams();
  for (const [name, value] of new URLSearchParams(ctx.querystring)) if (loggedParameters.includes(name)) kept.append(name, value.slice(0, 200));
  const text = kept.toString();
  return text === '' ? undefined : text;
}

/**
 * Gives each request an id (the client's X-Request-Id when sane) and writes one log line when it ends.
 * `mirroring`: whether a mirror may say where its answer came from; without one, no request pays for
 * the async context that carries it (Node then tracks every promise). Without `accessLog`, completed
 * requests are debug lines, and are not even built when debug is off.
 */
export function requestLogMiddleware(logger: Logger, { mirroring, accessLog }: { mirroring: boolean; accessLog: boolean }) {
  return async function requestLog(ctx: RegistryContext, next: () => Promise<void>): Promise<void> {
    const started = process.hrtime.bigint();
    const offered = ctx.get('x-request-id');
    ctx.state.requestId = clientRequestId.test(offered) ? offered : randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    // Read now: once the client is gone the socket (and so ctx.ip) may no longer be there. Every later
    // reader (audit, throttling, upload owners) sees the plain form.
    ctx.request.ip = plainAddress(ctx.ip);
    const remote = ctx.ip;
    // Probes come every few seconds from every load balancer: at info level they would drown the log.
    const probe = ctx.path === '/healthz' || ctx.path === '/readyz';
    const mirror: { answer?: MirrorAnswer } = {};
    ctx.res.once('close', () => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const completed = ctx.res.writableFinished;
      // A client that went away (docker cancelled, a probe timed out) is routine: debug, not info.
      const level = probe || !completed || !accessLog ? 'debug' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      const query = meaningfulQuery(ctx);
      logger[level](
        {
          requestId: ctx.state.requestId,
          method: ctx.method,
          path: ctx.path,
          ...(query ? { query } : {}),
          route: ctx.state.route ?? null,
          repository: ctx.state.repository ?? null,
          ...(mirror.answer ? { mirror: mirror.answer } : {}),
          user: ctx.state.user ?? null,
          status: ctx.res.statusCode,
          ...(ctx.state.refusal ? { refused: ctx.state.refusal } : {}),
          bytesIn: ctx.state.bytesReceived ?? 0,
          // A HEAD answer says how long the body would be; none is sent.
          bytesOut: !completed ? null : ctx.method === 'HEAD' ? 0 : (ctx.response.length ?? 0),
          completed,
          durationMs: Math.round(durationMs * 100) / 100,
          remote,
        },
        completed ? 'request' : 'client went away',
      );
    });
    await (mirroring ? withMirrorAnswer(mirror, next) : next());
  };
}
