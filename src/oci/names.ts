import { RegistryError } from './errors.js';

/** Longest repository name accepted, as in Distribution. */
export const maxRepositoryNameLength = 255;

const pathComponent = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const repositoryNamePattern = new RegExp(`^${pathComponent}(?:/${pathComponent})*$`);
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function isValidRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= maxRepositoryNameLength && repositoryNamePattern.test(name);
}

/** Validates a repository name taken from the raw (not percent-decoded) request path. */
export function validateRepositoryName(name: string): string {
  if (!isValidRepositoryName(name)) {
    throw new RegistryError('NAME_INVALID', {
      detail: { name: name.slice(0, maxRepositoryNameLength + 1), reason: describeBadName(name) },
    });
  }
  return name;
}

function describeBadName(name: string): string {
  if (name.length === 0) return 'empty name';
  if (name.length > maxRepositoryNameLength) return `longer than ${maxRepositoryNameLength} characters`;
  return 'must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*)*';
}

export function isValidTag(tag: string): boolean {
  return tagPattern.test(tag);
}

export function validateTag(tag: string): string {
  if (!isValidTag(tag)) {
    throw new RegistryError('TAG_INVALID', { detail: { tag: tag.slice(0, 200) } });
  }
  return tag;
}
