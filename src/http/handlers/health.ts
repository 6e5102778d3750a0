import { sql } from 'kysely';
import type { MetadataDb } from '../../metadata/database.js';
import type { StorageDriver } from '../../storage/driver.js';
import type { RegistryContext } from '../context.js';

/** Whether the process is stopping (set at SIGTERM): readiness then fails while in-flight requests finish. */
export interface Lifecycle {
  draining: boolean;
}

/** How long one readiness check may take before it counts as failed. */
const checkTimeoutMs = 2000;

async function check(probe: () => Promise<unknown>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${checkTimeoutMs} ms`)), checkTimeoutMs);
      }),
    ]);
    return 'ok';
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    clearTimeout(timer);
  }
}

/** The probes of orchestrators and load balancers: no auth, logged at debug level only. */
export function healthHandlers(deps: { metadata: MetadataDb; storage: StorageDriver; lifecycle: Lifecycle }) {
  return {
    /** GET /healthz: liveness, the process answers. */
    async live(ctx: RegistryContext): Promise<void> {
      ctx.body = { status: 'ok' };
    },

    /** GET /readyz: the database answers, blob storage can be stat'ed, and the process is not stopping; else 503 with what failed. */
    async ready(ctx: RegistryContext): Promise<void> {
      const [database, storage] = await Promise.all([
        check(() => sql`select 1`.execute(deps.metadata)),
        check(() => deps.storage.stat('readiness-probe')),
      ]);
      const checks = { database, storage, draining: deps.lifecycle.draining ? 'stopping' : 'ok' };
      const ready = Object.values(checks).every((value) => value === 'ok');
      ctx.status = ready ? 200 : 503;
      ctx.body = { status: ready ? 'ready' : 'not ready', checks };
    },
  };
}
