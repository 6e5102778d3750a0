/**
 * Scopes of the Docker token spec: `repository:team/app:pull,push`, `repository(plugin):x:pull`,
 * `registry:catalog:*`, `repository:127.0.0.1:5000/team/app:pull`. A token's `access` claim is a list
 * of these with the actions granted.
 */

export type Action = 'pull' | 'push' | 'delete' | '*';

export interface Scope {
  type: string;
  /** The class in `repository(plugin)`, if any. */
  resourceClass?: string;
  name: string;
  actions: string[];
}

/** One entry of a token's access claim. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

const typePattern = /^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$/;

/**
 * Parses one scope; undefined when it is malformed. The name may hold colons (a host:port prefix), so
 * the type is what comes before the first colon and the actions what comes after the last.
 */
export function parseScope(text: string): Scope | undefined {
  const first = text.indexOf(':');
  const last = text.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const typeMatch = typePattern.exec(text.slice(0, first));
  const name = text.slice(first + 1, last);
  const actions = [...new Set(text.slice(last + 1).split(',').map((action) => action.trim()).filter((action) => action !== ''))];
  if (!typeMatch || name === '') return undefined;
  return { type: typeMatch[1]!, ...(typeMatch[2] ? { resourceClass: typeMatch[2] } : {}), name, actions };
}

/**
 * Every scope of a token request: `scope` may be given several times, and each value may hold several
 * scopes separated by spaces (the OAuth2 form). Malformed ones are ignored, as Distribution does.
 */
export function parseScopes(values: readonly string[]): Scope[] {
  const scopes: Scope[] = [];
  for (const value of values) {
    for (const text of value.split(' ')) {
      const scope = text === '' ? undefined : parseScope(text);
      if (scope) scopes.push(scope);
    }
  }
  return scopes;
}

export function formatScope(scope: AccessEntry): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}

/** Whether the granted actions cover the one needed (`*` covers every action). */
export function actionsCover(granted: readonly string[], needed: string): boolean {
  return granted.includes(needed) || granted.includes('*');
}

/** The registry-wide grants, as a policy rule gives them (`catalog: true`, `audit: true`, `operator: true`, `mirror-import: true`). */
export const catalogAccess: AccessEntry = { type: 'registry', name: 'catalog', actions: ['*'] };
/** Reading the audit log. */
export const auditAccess: AccessEntry = { type: 'registry', name: 'audit', actions: ['*'] };
/** Operations on the whole registry: garbage collection, retention runs, webhook status. */
export const operatorAccess: AccessEntry = { type: 'registry', name: 'operator', actions: ['*'] };
/** Managing accounts: system admins only (no rule of the policy file grants it). */
export const adminAccess: AccessEntry = { type: 'registry', name: 'admin', actions: ['*'] };
/** Writing into any mirror cache through the cache-import API (loader accounts). */
export const mirrorImportAccess: AccessEntry = { type: 'registry', name: 'mirror-import', actions: ['*'] };
