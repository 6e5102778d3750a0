import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/config-error.js';
import { parseRetentionPolicies, type RetentionPolicySettings } from '../../src/config/retention-policies.js';
import { ImmutableTags, noImmutableTags } from '../../src/registry/immutable-tags.js';
import { compilePolicies, configuredPolicies, planRepository } from '../../src/retention/plan.js';

const day = 86_400_000;
const now = Date.UTC(2026, 11, 1);
const tag = (name: string, pushedDaysAgo: number, pulledDaysAgo: number | null = null) => ({
  name,
  digest: `sha256:${name.padEnd(64, '0').slice(0, 64)}`,
  pushedAt: now - pushedDaysAgo * day,
  pulledAt: pulledDaysAgo === null ? null : now - pulledDaysAgo * day,
});
const tags = [tag('a', 1), tag('b', 10), tag('c', 30, 1), tag('latest', 60), tag('v1.0', 90), tag('keep-me', 100), tag('old', 200)];
const policy = (settings: Partial<RetentionPolicySettings> & Pick<RetentionPolicySettings, 'keep'>): RetentionPolicySettings => ({ repositories: ['app/**'], tags: ['*'], untagged: 'keep', ...settings });
const deleted = (policies: RetentionPolicySettings[], immutable = noImmutableTags, repository = 'app/web') =>
  planRepository(repository, tags, compilePolicies(policies), immutable, now).map((decision) => decision.tag);

describe('retention plans', () => {
  it('keeps what any clause keeps: the most recent, pushed within, pulled within, by name; latest unless named', () => {
    assert.deepEqual(deleted([policy({ keep: { mostRecent: 1, pushedWithin: 15 * day, pulledWithin: 7 * day, tags: ['keep-*'] } })]), ['v1.0', 'old']);
    assert.deepEqual(deleted([policy({ keep: { mostRecent: 2 } })]), ['c', 'v1.0', 'keep-me', 'old'], 'latest is never considered unless named');
    assert.deepEqual(deleted([policy({ tags: ['latest', '*'], keep: { mostRecent: 2 } })]), ['c', 'latest', 'v1.0', 'keep-me', 'old']);
    assert.deepEqual(deleted([policy({ tags: ['v*'], keep: { pushedWithin: day } })]), ['v1.0'], 'only the tags the policy selects are considered');
  });

  it('a tag kept by any policy stays; immutable tags always stay; other repositories are untouched', () => {
    assert.deepEqual(deleted([policy({ keep: { mostRecent: 1 } }), policy({ keep: { tags: ['b', 'old'] } })]), ['c', 'v1.0', 'keep-me']);
    assert.deepEqual(deleted([policy({ keep: { mostRecent: 1 } })], new ImmutableTags([{ repositories: ['app/**'], tags: ['v*', 'old'] }])), ['b', 'c', 'keep-me']);
    assert.deepEqual(deleted([policy({ keep: { mostRecent: 1 } })], noImmutableTags, 'other/web'), []);
    const [decision] = planRepository('app/web', tags, compilePolicies([policy({ keep: { pushedWithin: 150 * day } })]), noImmutableTags, now);
    assert.deepEqual(decision, { repository: 'app/web', tag: 'old', digest: tags.at(-1)!.digest, pushedAt: now - 200 * day, pulledAt: null, policy: 'retention.policies[0]' });
  });

  it('reads policies in zot\'s and Harbor\'s vocabulary, and refuses one that keeps nothing', () => {
    assert.deepEqual(parseRetentionPolicies([{ repositories: 'team/**', keep: { mostRecent: 5, pushedWithin: '30d', pulledWithin: '90d', tags: ['v*'] }, untagged: 'delete' }], 'retention.policies'), [
      { repositories: ['team/**'], tags: ['*'], keep: { mostRecent: 5, pushedWithin: 30 * day, pulledWithin: 90 * day, tags: ['v*'] }, untagged: 'delete' },
    ]);
    const refused = (value: unknown, message: RegExp) => assert.throws(() => parseRetentionPolicies(value, 'retention.policies'), (error: unknown) => error instanceof ConfigError && message.test(error.message));
    refused([{ repositories: ['team/**'] }], /retention\.policies\[0\]\.keep: name at least one of/);
    refused([{ repositories: ['team/**'], keep: {} }], /keep: name at least one/);
    refused([{ repositories: ['team/**'], keep: { mostRecent: -1 } }], /mostRecent: expected a whole number/);
    refused([{ repositories: ['team/**'], keep: { newest: 3 } }], /keep\.newest: unknown field/);
    refused([{ repositories: ['team/**'], keep: { pushedWithin: 'a month' } }], /pushedWithin: expected a duration/);
    refused([{ repositories: ['team/**'], keep: { mostRecent: 1 }, untagged: 'purge' }], /untagged: expected delete or keep/);
    refused([{ keep: { mostRecent: 1 } }], /repositories: expected a non-empty list/);
  });
});

describe('retention policies and recorded pulls', () => {
  it('a policy keeping by pulls is refused while pulls are not recorded', () => {
    const policies = parseRetentionPolicies([{ repositories: ['app/**'], keep: { pulledWithin: '30d' } }], 'retention.policies');
    assert.throws(() => configuredPolicies({ retention: { policies }, audit: { pulls: false } }), (error: unknown) => error instanceof ConfigError && /retention\.policies\[0\]\.keep\.pulledWithin needs pulls recorded \(audit\.pulls: true\)/.test(error.message));
    assert.equal(configuredPolicies({ retention: { policies }, audit: { pulls: true } }), policies);
  });
});
