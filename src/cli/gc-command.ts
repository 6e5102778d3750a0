import { setPriority } from 'node:os';
import pino from 'pino';
import type { RegistryConfig } from '../config/schema.js';
import { buildServices, registrySettings } from '../composition.js';
import { GcBusyError, type GcPhase, type KeptFigures } from '../gc/collector.js';
import { openStores } from '../stores.js';
import { ProgressBar } from './progress.js';
import { formatBytes, plural } from './report.js';
import { systemClock } from '../clock.js';

function keptText(kept: KeptFigures): string {
  return [...(kept.manifests > 0 ? [plural(kept.manifests, 'manifest')] : []), `${plural(kept.blobs, 'blob')} (${formatBytes(kept.bytes)})`].join(', ');
}

/** The niceness the command runs at. */
const backgroundPriority = 10;

export interface GcCommandOptions {
  dryRun?: boolean;
  untagged?: boolean;
  graceMs?: number;
  json?: boolean;
}

/**
 * `registry gc [--dry-run] [--untagged] [--grace DURATION] [--json]`: one collection, safe beside
 * running servers on the same stores. Exit 0 when it succeeded, 1 when it failed, 2 when another run
 * holds the lease.
 */
export async function gcCommand(config: RegistryConfig, options: GcCommandOptions): Promise<number> {
  // Background work: the servers beside it come first for the CPU (as `nice` would have it).
  setPriority(backgroundPriority);
  const logger = pino({ level: 'warn', base: { service: 'registry' } }, pino.destination(2));
  const stores = await openStores(config, logger);
  const settings = config.storage.maintenance.gc;
  const bars = new Map<GcPhase, ProgressBar>();
  const progress = (phase: GcPhase, done: number, total: number) => {
    if (options.json || phase === 'mark') return;
    let bar = bars.get(phase);
    if (!bar) bars.set(phase, (bar = new ProgressBar(phase)));
    bar.update(done, total);
  };
  try {
    const { services } = buildServices({ stores: { storage: stores.storage, metadata: stores.metadata.db, clock: systemClock }, logger, settings: registrySettings(config) });
    const collector = services.gc.collector;
    const report = await collector.run(
      { dryRun: options.dryRun ?? settings.dryrun, untagged: options.untagged ?? settings.untagged, graceMs: options.graceMs ?? settings.grace },
      progress,
    );
    if (options.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      const verb = report.dryRun ? 'would collect' : 'collected';
      process.stdout.write(
        `${verb} ${plural(report.manifests, 'manifest')}, ${plural(report.blobs, 'blob')} (${formatBytes(report.bytes)}), ` +
          `${plural(report.orphans, 'orphaned blob')} (${formatBytes(report.orphanBytes)})${report.evicted > 0 ? `, ${report.dryRun ? 'would evict' : 'evicted'} ${plural(report.evicted, 'cached image')}` : ''} in ${(report.durationMs / 1000).toFixed(1)} s ` +
          `(mark ${(report.markMs / 1000).toFixed(1)} s${report.leftovers > 0 ? `; finished ${report.leftovers} deletions an earlier run left` : ''}); run ${report.id}\n`,
      );
      const { grace, timeMachine } = report.kept;
      const keptParts = [
        ...(grace.manifests + grace.blobs > 0 ? [`${keptText(grace)} by the grace window (storage.maintenance.gc.grace)`] : []),
        ...(timeMachine.manifests + timeMachine.blobs > 0 ? [`${keptText(timeMachine)} by the time machine (audit.timemachine)`] : []),
      ];
      if (keptParts.length > 0) process.stdout.write(`kept ${keptParts.join('; ')}\n`);
      if (report.error) process.stderr.write(`registry: garbage collection failed: ${report.error}\n`);
    }
    return report.state === 'succeeded' ? 0 : 1;
  } catch (error) {
    if (!(error instanceof GcBusyError)) throw error;
    process.stderr.write(`registry: ${error.message}\n`);
    return 2;
  } finally {
    await stores.metadata.close();
    stores.closeStorage();
  }
}
