import pino from 'pino';
import { buildServices, registrySettings } from '../composition.js';
import type { RegistryConfig } from '../config/schema.js';
import { openStores } from '../stores.js';
import { plural } from './report.js';
import { systemClock } from '../clock.js';

/**
 * `registry retention run [--dry-run] [--json]`: applies the retention policies once, beside running
 * servers or without one. Exit 0 when done, 1 when the collection of untagged manifests could not run.
 */
export async function retentionCommand(config: RegistryConfig, options: { dryRun: boolean; json: boolean }): Promise<number> {
  const logger = pino({ level: 'warn', base: { service: 'registry' } }, pino.destination(2));
  const stores = await openStores(config, logger);
  try {
    const { services } = buildServices({ stores: { storage: stores.storage, metadata: stores.metadata.db, clock: systemClock }, logger, settings: registrySettings(config) });
    const retention = services.retention;
    if (!retention.configured) {
      process.stderr.write('registry: no retention policies are configured (retention.policies)\n');
      return 1;
    }
    const report = await retention.run({ dryRun: options.dryRun });
    if (options.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      const verb = report.dryRun ? 'would delete' : 'deleted';
      process.stdout.write(`${verb} ${plural(report.deleted.length, 'tag')} in ${plural(report.repositories, 'repository', 'repositories')} under ${plural(report.policies, 'policy', 'policies')}${report.changedMeanwhile > 0 ? ` (${report.changedMeanwhile} pushed again meanwhile, kept)` : ''}\n`);
      for (const tag of report.deleted) process.stdout.write(`  ${tag.repository}:${tag.tag}  ${tag.digest}  pushed ${tag.pushedAt}  ${tag.pulledAt ? `pulled ${tag.pulledAt}` : 'never pulled'}  (${tag.policy})\n`);
      if (report.untagged && 'error' in report.untagged) process.stderr.write(`registry: untagged manifests not collected: ${report.untagged.error}\n`);
      else if (report.untagged) process.stdout.write(`untagged manifests: ${report.dryRun ? 'would collect' : 'collected'} ${plural(report.untagged.manifests, 'manifest')} (garbage collection run ${report.untagged.gcRun})\n`);
    }
    return report.untagged && 'error' in report.untagged ? 1 : 0;
  } finally {
    await stores.metadata.close();
    stores.closeStorage();
  }
}
