import type { RegistryMetrics } from '../../metrics/registry-metrics.js';
import type { RegistryContext } from '../context.js';

/** Counts and times every request by its route (not its path: names would make series without end). */
export function requestMetricsMiddleware(metrics: RegistryMetrics) {
  return async function requestMetrics(ctx: RegistryContext, next: () => Promise<void>): Promise<void> {
    const started = process.hrtime.bigint();
    ctx.res.once('close', () => {
      const route = ctx.state.route ?? 'unmatched';
      const labels = { route, method: ctx.method, status: String(ctx.res.statusCode) };
      metrics.requests.inc(labels);
      metrics.requestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      if (ctx.state.bytesReceived) metrics.bytesReceived.inc({ route }, ctx.state.bytesReceived);
      const sent = ctx.res.writableFinished ? (ctx.response.length ?? 0) : 0;
      if (sent > 0) metrics.bytesSent.inc({ route }, sent);
    });
    await next();
  };
}
