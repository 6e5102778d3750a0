import { ConfigError } from '../config/config-error.js';
import type { RetentionPolicySettings } from '../config/retention-policies.js';
import { globToRegExp } from '../oci/name-patterns.js';
import type { ImmutableTags } from '../registry/immutable-tags.js';
import type { TagTimes } from '../metadata/tags.js';

export interface RetentionPolicy {
  /** Where it is written, and the actor of its deletions: `retention.policies[0]`. */
  name: string;
  settings: RetentionPolicySettings;
  appliesTo(repository: string): boolean;
  considers(tag: string): boolean;
  keepsByName(tag: string): boolean;
}

export function compilePolicies(settings: readonly RetentionPolicySettings[]): RetentionPolicy[] {
  return settings.map((policy, index) => {
    const repositories = policy.repositories.map(globToRegExp);
    const selector = policy.tags.map(globToRegExp);
    const kept = (policy.keep.tags ?? []).map(globToRegExp);
    // `latest` is what people pull without thinking: only a policy that names it considers it.
    const namesLatest = policy.tags.includes('latest');
    return {
      name: `retention.policies[${index}]`,
      settings: policy,
      appliesTo: (repository) => repositories.some((pattern) => pattern.test(repository)),
      considers: (tag) => (tag !== 'latest' || namesLatest) && selector.some((pattern) => pattern.test(tag)),
      keepsByName: (tag) => kept.some((pattern) => pattern.test(tag)),
    };
  });
}

export interface RetentionDecision {
  repository: string;
  tag: string;
  digest: string;
  pushedAt: number;
  pulledAt: number | null;
  /** The first policy that considered the tag and kept it by none of its clauses. */
  policy: string;
}

/**
 * Which tags of one repository go: those some policy considers and no considering policy keeps (a
 * tag kept by any clause of any policy stays). Immutable tags always stay. Pure: the same tags,
 * policies and time give the same answer.
 */
export function planRepository(repository: string, tags: readonly TagTimes[], policies: readonly RetentionPolicy[], immutable: ImmutableTags, now: number): RetentionDecision[] {
  const applying = policies.filter((policy) => policy.appliesTo(repository));
  if (applying.length === 0) return [];
  const keptBy = new Map<RetentionPolicy, Set<string>>();
  for (const policy of applying) {
    const keep = policy.settings.keep;
    const considered = tags.filter((tag) => policy.considers(tag.name));
    const newestFirst = [...considered].sort((a, b) => b.pushedAt - a.pushedAt || (a.name < b.name ? -1 : 1));
    const kept = new Set<string>(newestFirst.slice(0, keep.mostRecent ?? 0).map((tag) => tag.name));
    for (const tag of considered) {
      if (keep.pushedWithin !== undefined && tag.pushedAt >= now - keep.pushedWithin) kept.add(tag.name);
      if (keep.pulledWithin !== undefined && tag.pulledAt !== null && tag.pulledAt >= now - keep.pulledWithin) kept.add(tag.name);
      if (policy.keepsByName(tag.name)) kept.add(tag.name);
    }
    keptBy.set(policy, kept);
  }
  const decisions: RetentionDecision[] = [];
  for (const tag of tags) {
    const considering = applying.filter((policy) => policy.considers(tag.name));
    if (considering.length === 0 || immutable.ruleFor(repository, tag.name)) continue;
    if (considering.some((policy) => keptBy.get(policy)!.has(tag.name))) continue;
    decisions.push({ repository, tag: tag.name, digest: tag.digest, pushedAt: tag.pushedAt, pulledAt: tag.pulledAt, policy: considering[0]!.name });
  }
  return decisions;
}

/**
 * The configured policies, refused when one keeps by pulls while pulls are not recorded: every tag
 * would count as never pulled, and pulledWithin would keep nothing it means to keep.
 */
export function configuredPolicies(config: { retention: { policies: readonly RetentionPolicySettings[] }; audit: { pulls: boolean } }): readonly RetentionPolicySettings[] {
  const index = config.retention.policies.findIndex((policy) => policy.keep.pulledWithin !== undefined);
  if (index >= 0 && !config.audit.pulls) {
    throw new ConfigError(`retention.policies[${index}].keep.pulledWithin needs pulls recorded (audit.pulls: true): without them no tag counts as pulled`);
  }
  return config.retention.policies;
}
