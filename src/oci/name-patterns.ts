/**
 * A repository glob as a regular expression: `*` is any run of characters but `/`, `**` any run at
 * all (slashes included), `?` one character but `/`. `team-a/**` matches `team-a/app` and
 * `team-a/x/y`.
 */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let index = 0; index < glob.length; index++) {
    const char = glob[index]!;
    if (char === '*' && glob[index + 1] === '*') {
      source += '.*';
      index++;
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}
