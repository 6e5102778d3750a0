import { invalidParameter } from '../../audit/filters.js';
import type { RetentionService } from '../../retention/retention-service.js';
import type { RegistryContext } from '../context.js';
import { queryParameter } from '../request-parts.js';

/** POST /api/v1/retention?dryrun=true|false: applies the retention policies now and answers the report. */
export function retentionHandlers(retention: RetentionService) {
  return {
    async run(ctx: RegistryContext): Promise<void> {
      const dryRunText = queryParameter(ctx, 'dryrun') ?? 'false';
      if (dryRunText !== 'true' && dryRunText !== 'false') throw invalidParameter('dryrun', 'expected true or false', dryRunText);
      ctx.body = await retention.run({ dryRun: dryRunText === 'true' });
    },
  };
}
