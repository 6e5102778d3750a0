import { RegistryError } from '../oci/errors.js';
import { globToRegExp } from '../oci/name-patterns.js';

export interface ImmutableRuleSettings {
  repositories: readonly string[];
  tags: readonly string[];
}

export interface ImmutableRule {
  /** Where it is written: `tags.immutable[0]`. */
  name: string;
  repositories: readonly string[];
  tags: readonly string[];
  matches(repository: string, tag: string): boolean;
}

export type RefusedTagChange = 'move' | 'delete' | 'delete-manifest';

const refusals: Record<RefusedTagChange, string> = {
  move: 'it cannot be moved to another digest',
  delete: 'it cannot be deleted',
  'delete-manifest': 'the manifest it points at cannot be deleted',
};

/**
 * Immutable tags (tags.immutable): a tag a rule covers may be created once; it may not be moved to
 * another digest or deleted, nor may the manifest it points at. Pushing the digest it has again is
 * no change, so a CI retry succeeds. The checks run in the transaction that changes the tag, on the
 * value read there, so two pushes racing to create one immutable tag cannot both win.
 */
export class ImmutableTags {
  private readonly rules: ImmutableRule[];

  constructor(settings: readonly ImmutableRuleSettings[]) {
    this.rules = settings.map((rule, index) => {
      const repositories = rule.repositories.map(globToRegExp);
      const tags = rule.tags.map(globToRegExp);
      return {
        name: `tags.immutable[${index}]`,
        repositories: rule.repositories,
        tags: rule.tags,
        matches: (repository: string, tag: string) => repositories.some((pattern) => pattern.test(repository)) && tags.some((pattern) => pattern.test(tag)),
      };
    });
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** The first rule that covers the tag, if any. */
  ruleFor(repository: string, tag: string): ImmutableRule | undefined {
    return this.rules.find((rule) => rule.matches(repository, tag));
  }

  /** Throws 403 DENIED naming the rule when one covers the tag. */
  refuse(repository: string, tag: string, change: RefusedTagChange): void {
    const rule = this.ruleFor(repository, tag);
    if (!rule) return;
    throw new RegistryError('DENIED', {
      message: `${repository}:${tag} is immutable (${describeRule(rule)}): ${refusals[change]}`,
      detail: { name: repository, tag, rule: rule.name },
    });
  }
}

export function describeRule(rule: ImmutableRule): string {
  return `${rule.name}: repositories ${rule.repositories.join(', ')}, tags ${rule.tags.join(', ')}`;
}

export const noImmutableTags = new ImmutableTags([]);
