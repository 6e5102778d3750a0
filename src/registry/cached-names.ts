/** An upstream whose cached repositories are listed, by the prefix clients pull them with. */
export interface ListedUpstream {
  name: string;
  prefix: string;
}

/** Byte order of names (repository names are ASCII). */
export function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Where an upstream's cached names (`<prefix>/…`) start after the name `last`: every one of them
 * (`all`), none, or those whose upstream name sorts after `repository`. The names with one prefix
 * are one run in byte order, so a name outside the run sorts before or after all of it.
 */
export function cachedNamesAfter(prefix: string, last: string): { all: true } | { none: true } | { repository: string } {
  const start = `${prefix}/`;
  if (last.startsWith(start)) return { repository: last.slice(start.length) };
  return last < start ? { all: true } : { none: true };
}
