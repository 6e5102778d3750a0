import type { Logger } from 'pino';
import type { RetentionPolicySettings } from '../config/retention-policies.js';
import { GcBusyError, type GarbageCollector, type GcReport } from '../gc/collector.js';
import type { MetadataDb } from '../metadata/database.js';
import { findRepository, listRepositoriesWithManifests } from '../metadata/repositories.js';
import { listTagTimes } from '../metadata/tags.js';
import type { ImmutableTags } from '../registry/immutable-tags.js';
import type { ManifestService } from '../registry/manifests.js';
import { compilePolicies, planRepository, type RetentionDecision, type RetentionPolicy } from './plan.js';
import type { RequestOrigin } from '../audit/settings.js';
import type { Clock } from '../clock.js';

/** Who asked for a run over HTTP, and what of the registry they may see. */
export interface RetentionTrigger {
  origin: RequestOrigin;
  /** Repositories the report may name (a dry run by someone who is not an operator); all when absent. */
  visible?: (repository: string) => boolean;
}

export interface RetentionReport {
  dryRun: boolean;
  startedAt: string;
  durationMs: number;
  policies: number;
  /** Repositories some policy applies to. */
  repositories: number;
  /** Tags deleted (a dry run: that would be). */
  deleted: Array<Omit<RetentionDecision, 'pushedAt' | 'pulledAt'> & { pushedAt: string; pulledAt: string | null }>;
  /** Tags pushed again or moved between the decision and the delete: left alone. */
  changedMeanwhile: number;
  /** The collection of manifests left untagged in repositories of `untagged: delete` policies. */
  untagged: { gcRun: number; manifests: number; blobs: number; bytes: number } | { error: string } | null;
}

const pageSize = 1000;

/**
 * Retention policies (retention.policies): tags that no clause keeps are deleted, each with a
 * `deleted` audit event whose actor is the policy (and, for a run asked for over HTTP, the account
 * that asked in its detail, its address and request id beside); then, for `untagged: delete` policies, a
 * garbage collection of untagged manifests in their repositories (which keeps what a tag pointed
 * at within audit.timemachine) frees what nothing names.
 */
export class RetentionService {
  private readonly policies: RetentionPolicy[];

  constructor(
    private readonly metadata: MetadataDb,
    private readonly manifests: ManifestService,
    settings: readonly RetentionPolicySettings[],
    private readonly immutable: ImmutableTags,
    private readonly collector: GarbageCollector,
    private readonly gcGraceMs: number,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {
    this.policies = compilePolicies(settings);
  }

  get configured(): boolean {
    return this.policies.length > 0;
  }

  /** What the policies would delete now, repository by repository (those `visible` accepts). */
  async plan(now: number, visible: (repository: string) => boolean = () => true): Promise<{ repositories: number; decisions: RetentionDecision[] }> {
    const decisions: RetentionDecision[] = [];
    let repositories = 0;
    let last: string | undefined;
    for (;;) {
      const names = await listRepositoriesWithManifests(this.metadata, pageSize, last);
      for (const name of names) {
        if (!this.policies.some((policy) => policy.appliesTo(name)) || !visible(name)) continue;
        const row = await findRepository(this.metadata, name);
        if (!row) continue;
        repositories += 1;
        decisions.push(...planRepository(name, await listTagTimes(this.metadata, row.id), this.policies, this.immutable, now));
      }
      if (names.length < pageSize) break;
      last = names.at(-1);
    }
    return { repositories, decisions };
  }

  /** A real run needs the whole registry in view: only dry runs are cut to what the caller may see. */
  async run(options: { dryRun: boolean; trigger?: RetentionTrigger }): Promise<RetentionReport> {
    const started = this.clock.now();
    const timer = performance.now();
    const trigger = options.trigger;
    if (!options.dryRun && trigger?.visible) throw new Error('a retention run that deletes must see every repository');
    const { repositories, decisions } = await this.plan(started, trigger?.visible);
    const deleted: RetentionDecision[] = [];
    let changedMeanwhile = 0;
    if (!options.dryRun) {
      const detail = trigger ? JSON.stringify({ triggeredBy: trigger.origin.actor }) : null;
      for (const decision of decisions) {
        const origin = {
          actor: decision.policy,
          authMethod: 'system',
          address: trigger?.origin.address ?? null,
          userAgent: trigger?.origin.userAgent ?? null,
          requestId: trigger?.origin.requestId ?? `retention-${started}`,
        };
        if (await this.manifests.deleteTagIfUnchanged(decision.repository, decision.tag, decision, origin, detail)) deleted.push(decision);
        else changedMeanwhile += 1;
      }
    }
    const untagged = trigger?.visible ? null : await this.collectUntagged(options.dryRun, trigger?.origin);
    const report: RetentionReport = {
      dryRun: options.dryRun,
      startedAt: new Date(started).toISOString(),
      durationMs: Math.round(performance.now() - timer),
      policies: this.policies.length,
      repositories,
      deleted: (options.dryRun ? decisions : deleted).map((decision) => ({
        ...decision,
        pushedAt: new Date(decision.pushedAt).toISOString(),
        pulledAt: decision.pulledAt === null ? null : new Date(decision.pulledAt).toISOString(),
      })),
      changedMeanwhile,
      untagged,
    };
    this.logger.info({ dryRun: options.dryRun, repositories, deleted: report.deleted.length, changedMeanwhile, untagged }, 'retention policies applied');
    return report;
  }

  private async collectUntagged(dryRun: boolean, triggeredBy: RequestOrigin | undefined): Promise<RetentionReport['untagged']> {
    const deleting = this.policies.filter((policy) => policy.settings.untagged === 'delete');
    if (deleting.length === 0) return null;
    let report: GcReport;
    try {
      report = await this.collector.run({
        dryRun,
        untagged: true,
        graceMs: this.gcGraceMs,
        untaggedIn: (repository) => deleting.some((policy) => policy.appliesTo(repository)),
        ...(triggeredBy ? { triggeredBy } : {}),
      });
    } catch (error) {
      if (error instanceof GcBusyError) return { error: error.message };
      throw error;
    }
    if (report.state !== 'succeeded') return { error: report.error ?? 'the collection failed' };
    return { gcRun: report.id, manifests: report.manifests, blobs: report.blobs, bytes: report.bytes };
  }
}
