import { ConfigError } from '../config/load.js';
import type { RegistryConfig } from '../config/schema.js';
import { validateRepositoryName, validateTag } from '../oci/names.js';
import { describeRule, ImmutableTags } from '../registry/immutable-tags.js';

/** `registry tags check NAME:TAG`: whether an immutable rule covers the tag (exit 0) or none does (exit 1). */
export function tagsCheckCommand(config: RegistryConfig, reference: string | undefined): number {
  const colon = reference?.lastIndexOf(':') ?? -1;
  if (!reference || colon <= reference.lastIndexOf('/')) throw new ConfigError('tags check needs NAME:TAG, e.g. registry tags check prod/api:v1.2.0');
  const repository = validateRepositoryName(reference.slice(0, colon));
  const tag = validateTag(reference.slice(colon + 1));
  const rule = new ImmutableTags(config.tags.immutable).ruleFor(repository, tag);
  if (rule) {
    process.stdout.write(`${repository}:${tag} is immutable (${describeRule(rule)}): it may be created once, then not moved or deleted\n`);
    return 0;
  }
  process.stdout.write(`${repository}:${tag} is not covered by any immutable rule (tags.immutable)\n`);
  return 1;
}
