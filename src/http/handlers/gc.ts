import { invalidParameter as invalid } from '../../oci/errors.js';
import { parseDuration } from '../../config/values.js';
import { GcBusyError } from '../../gc/collector.js';
import { findGcRun, listGcRuns } from '../../metadata/gc.js';
import { RegistryError } from '../../oci/errors.js';
import type { GcService, RegistryContext } from '../context.js';
import { queryParameter, requestOrigin } from '../request-parts.js';
import type { RouteParams } from '../route-types.js';


const listedRuns = 50;

/** A true|false query parameter; undefined when absent, 400 PARAMETER_INVALID naming it otherwise. */
function booleanParameter(ctx: RegistryContext, name: string): boolean | undefined {
  const value = queryParameter(ctx, name);
  if (value === undefined) return undefined;
  if (value !== 'true' && value !== 'false') throw invalid(name, 'expected true or false', value);
  return value === 'true';
}

/** The operators' API of garbage collection: start a run, list runs, read one run's report. */
export function gcHandlers(gc: GcService) {
  return {
    /**
     * POST /api/v1/gc?dryrun=true|false&grace=DURATION&untagged=true|false: 202 {id} of the run
     * started, 409 while another runs; grace and untagged default to storage.maintenance.gc's.
     */
    async start(ctx: RegistryContext): Promise<void> {
      const dryRun = booleanParameter(ctx, 'dryrun') ?? false;
      const untagged = booleanParameter(ctx, 'untagged') ?? gc.defaults.untagged;
      const graceText = queryParameter(ctx, 'grace');
      let graceMs = gc.defaults.graceMs;
      if (graceText !== undefined) {
        try {
          graceMs = parseDuration(graceText, 'grace');
        } catch {
          throw invalid('grace', 'expected a duration such as 0s, 30m or 24h', graceText);
        }
      }
      let started;
      try {
        started = await gc.collector.start({ dryRun, untagged, graceMs, triggeredBy: requestOrigin(ctx) });
      } catch (error) {
        if (error instanceof GcBusyError) throw new RegistryError('CONFLICT', { message: error.message });
        throw error;
      }
      // The run goes on after the answer; its outcome is in its report.
      started.done.catch(() => undefined);
      ctx.status = 202;
      ctx.set('Location', `/api/v1/gc/${started.id}`);
      ctx.body = { id: started.id };
    },

    /** GET /api/v1/gc: the latest runs, newest first (their reports without the dry-run lists). */
    async list(ctx: RegistryContext): Promise<void> {
      const runs = await listGcRuns(gc.metadata, listedRuns);
      ctx.body = {
        runs: runs.map(({ report, ...run }) => {
          const { wouldRemove: _listed, ...summary } = (report ?? {}) as { wouldRemove?: unknown };
          return { ...run, startedAt: new Date(run.startedAt).toISOString(), finishedAt: run.finishedAt === null ? null : new Date(run.finishedAt).toISOString(), report: report ? summary : null };
        }),
      };
    },

    /** GET /api/v1/gc/<id>: one run, its state and report (for a dry run, what would go). */
    async show(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const run = /^\d{1,15}$/.test(params.reference) ? await findGcRun(gc.metadata, Number(params.reference)) : undefined;
      if (!run) throw new RegistryError('NOT_FOUND', { message: `no garbage collection run ${params.reference.slice(0, 20)}` });
      ctx.body = { ...run, startedAt: new Date(run.startedAt).toISOString(), finishedAt: run.finishedAt === null ? null : new Date(run.finishedAt).toISOString() };
    },
  };
}
