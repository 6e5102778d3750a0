/**
 * The WWW-Authenticate challenge of a 401 answer. No imports: the web UI's bundle reads challenges
 * with this same function.
 */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"`. */
export function parseChallenge(header: string | null): Challenge | null {
  const match = header ? /^\s*(\w+)\s*(.*)$/s.exec(header) : null;
  if (!match) return null;
  const params: Record<string, string> = {};
  for (const param of (match[2] ?? '').matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[(param[1] ?? '').toLowerCase()] = (param[2] ?? param[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (match[1] ?? '').toLowerCase(), params };
}

