import { invalidParameter } from '../../oci/errors.js';
import type { RetentionService } from '../../retention/retention-service.js';
import type { RegistryContext } from '../context.js';
import { operatorAccess } from '../../auth/scopes.js';
import { queryParameter, requestOrigin } from '../request-parts.js';

/**
 * POST /api/v1/retention?dryrun=true|false: applies the retention policies now and answers the
 * report. A real run needs the operator grant; a dry run needs the catalog grant too, and names only
 * repositories the caller may pull unless the caller is an operator.
 */
export function retentionHandlers(retention: RetentionService) {
  return {
    async run(ctx: RegistryContext): Promise<void> {
      const dryRunText = queryParameter(ctx, 'dryrun') ?? 'false';
      if (dryRunText !== 'true' && dryRunText !== 'false') throw invalidParameter('dryrun', 'expected true or false', dryRunText);
      const grant = ctx.state.grant;
      const operator = !grant || grant.allows(operatorAccess.type, operatorAccess.name, '*');
      ctx.body = await retention.run({
        dryRun: dryRunText === 'true',
        trigger: { origin: requestOrigin(ctx), ...(operator ? {} : { visible: (repository: string) => grant.mayPull(repository) }) },
      });
    },
  };
}
