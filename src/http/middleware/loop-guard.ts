import type { Next } from 'koa';
import { RegistryError } from '../../oci/errors.js';
import type { RegistryContext } from '../context.js';

/**
 * A mirror adds `Via: 1.1 <instance id>` to what it asks upstream. A request that already passed
 * through this registry came back round a loop of mirrors: 508 instead of asking again.
 */
export function loopGuardMiddleware(instanceId: string) {
  return async (ctx: RegistryContext, next: Next): Promise<void> => {
    const via = ctx.get('via');
    if (via !== '') {
      const receivedBy = via.split(',').map((hop) => hop.trim().split(/\s+/)[1]);
      if (receivedBy.includes(instanceId)) {
        throw new RegistryError('LOOP_DETECTED', { message: `request loop: this registry (${instanceId}) already handled it (Via: ${via.slice(0, 300)})` });
      }
    }
    await next();
  };
}
