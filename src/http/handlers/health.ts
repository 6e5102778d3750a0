import type { Readiness } from '../../health/readiness.js';
import type { RegistryContext } from '../context.js';

/** The probes of orchestrators and load balancers: no auth, logged at debug level only. */
export function healthHandlers(readiness: Readiness) {
  return {
    /** GET /healthz: liveness, the process answers. */
    async live(ctx: RegistryContext): Promise<void> {
      ctx.body = { status: 'ok' };
    },

    /**
     * GET /readyz: the database answers at the schema this code needs, blob storage can be stat'ed
     * (written to, while it was last seen full), and the process is not stopping; else 503 with what failed.
     */
    async ready(ctx: RegistryContext): Promise<void> {
      const checks = await readiness.checks();
      const ready = Object.values(checks).every((value) => value === 'ok');
      ctx.status = ready ? 200 : 503;
      ctx.body = { status: ready ? 'ready' : 'not ready', checks };
    },
  };
}
