import { ConfigError } from './config-error.js';
import { entries, parseDuration, section, stringList } from './values.js';

/** What a retention policy keeps of the tags it considers: a tag kept by any clause stays. */
export interface RetentionKeep {
  /** The N most recently pushed tags. */
  mostRecent?: number;
  /** Tags pushed within this many milliseconds. */
  pushedWithin?: number;
  /** Tags pulled within this many milliseconds (needs audit.pulls). */
  pulledWithin?: number;
  /** Tags matching these globs. */
  tags?: string[];
}

export interface RetentionPolicySettings {
  repositories: string[];
  /** The tags the policy considers (globs); others it leaves alone. `latest` only when named. */
  tags: string[];
  keep: RetentionKeep;
  /** Whether manifests left with no tag (in its repositories) go too. */
  untagged: 'delete' | 'keep';
}

const keepFields = ['mostRecent', 'pushedWithin', 'pulledWithin', 'tags'] as const;

/** `retention.policies`: each names its repositories and at least one keep clause (deleting every tag is never a default). */
export function parseRetentionPolicies(value: unknown, where: string): RetentionPolicySettings[] {
  return entries(value, where, (raw, policyWhere) => {
    const policy = section(raw, ['repositories', 'tags', 'keep', 'untagged'], policyWhere);
    const keepRaw = section(policy.keep ?? {}, keepFields, `${policyWhere}.keep`);
    const keep: RetentionKeep = {};
    if (keepRaw.mostRecent !== undefined) {
      const count = keepRaw.mostRecent;
      if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) throw new ConfigError(`${policyWhere}.keep.mostRecent: expected a whole number of tags`);
      keep.mostRecent = count;
    }
    if (keepRaw.pushedWithin !== undefined) keep.pushedWithin = parseDuration(keepRaw.pushedWithin, `${policyWhere}.keep.pushedWithin`);
    if (keepRaw.pulledWithin !== undefined) keep.pulledWithin = parseDuration(keepRaw.pulledWithin, `${policyWhere}.keep.pulledWithin`);
    if (keepRaw.tags !== undefined) keep.tags = stringList(keepRaw.tags, `${policyWhere}.keep.tags`, { nonEmpty: true });
    if (Object.keys(keep).length === 0) {
      throw new ConfigError(`${policyWhere}.keep: name at least one of ${keepFields.join(', ')} (a policy that keeps nothing would delete every tag)`);
    }
    const untagged = policy.untagged ?? 'keep';
    if (untagged !== 'delete' && untagged !== 'keep') throw new ConfigError(`${policyWhere}.untagged: expected delete or keep`);
    return {
      repositories: stringList(policy.repositories, `${policyWhere}.repositories`, { nonEmpty: true }),
      tags: policy.tags === undefined ? ['*'] : stringList(policy.tags, `${policyWhere}.tags`, { nonEmpty: true }),
      keep,
      untagged,
    };
  });
}
