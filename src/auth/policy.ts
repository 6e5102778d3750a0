import { ConfigError, readYamlFile } from '../config/load.js';
import { globToRegExp } from '../oci/name-patterns.js';
import { actionsCover, type AccessEntry, type Scope } from './scopes.js';

/** Who is asking: nobody (no credentials), a user, or a robot account (`robot$<name>`); `admin`: a system admin (an account of the database). */
export type Principal = { kind: 'anonymous' } | { kind: 'user' | 'robot'; name: string; groups: readonly string[]; admin?: boolean };

export const anonymous: Principal = { kind: 'anonymous' };
export const robotPrefix = 'robot$';

/** The account name tokens carry in `sub` and logs show: the user name, `robot$<name>`, or empty. */
export function accountOf(principal: Principal): string {
  if (principal.kind === 'anonymous') return '';
  return principal.kind === 'robot' ? `${robotPrefix}${principal.name}` : principal.name;
}

export interface AccountEntry {
  /** bcrypt hash of the password (users) or secret (robots); users may instead live in the htpasswd file. */
  hash?: string;
  groups: string[];
}

export interface AccessRule {
  accounts: string[];
  groups: string[];
  robots: string[];
  anonymous: boolean;
  authenticated: boolean;
  repositories: RegExp[];
  catalog: boolean;
  /** Reading the audit log (events, tag histories, verification). */
  audit: boolean;
  /** Operations that act on the whole registry: garbage collection, retention runs, webhook status. */
  operator: boolean;
  /** Writing into mirror caches through the cache-import API, whatever the mirrored name (loader accounts). */
  mirrorImport: boolean;
  actions: string[];
}

export interface AccessPolicy {
  users: Map<string, AccountEntry>;
  robots: Map<string, AccountEntry>;
  rules: AccessRule[];
}

/** A policy, htpasswd, key or certificate file that cannot be used: stops the start like a bad key. */
export class PolicyError extends ConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

const knownActions = new Set(['pull', 'push', 'delete', '*']);

/** Every authenticated account may do everything; anonymous requests nothing. Used without a policy file. */
export const openToAccountsPolicy: AccessPolicy = {
  users: new Map(),
  robots: new Map(),
  rules: [
    {
      accounts: [],
      groups: [],
      robots: [],
      anonymous: false,
      authenticated: true,
      repositories: [globToRegExp('**')],
      catalog: true,
      audit: true,
      operator: true,
      mirrorImport: true,
      actions: ['*'],
    },
  ],
};

/** The grants of the whole registry a rule can give, by their scope name (`registry:<name>:*`). */
const registryGrants = { catalog: 'catalog', audit: 'audit', operator: 'operator', 'mirror-import': 'mirrorImport' } as const satisfies Record<string, keyof AccessRule>;

function stringList(value: unknown, where: string): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) throw new PolicyError(`${where}: expected a list of strings`);
  return list;
}

function accounts(section: unknown, secretKey: 'password' | 'secret', where: string): Map<string, AccountEntry> {
  const result = new Map<string, AccountEntry>();
  if (section === undefined || section === null) return result;
  if (typeof section !== 'object' || Array.isArray(section)) throw new PolicyError(`${where}: expected a map of names`);
  for (const [name, raw] of Object.entries(section as Record<string, unknown>)) {
    const entry = (raw ?? {}) as Record<string, unknown>;
    const hash = entry[secretKey];
    if (hash !== undefined && (typeof hash !== 'string' || !/^\$2[aby]\$\d\d\$/.test(hash))) {
      throw new PolicyError(`${where}.${name}.${secretKey}: expected a bcrypt hash ($2y$…, as htpasswd -B writes)`);
    }
    if (secretKey === 'secret' && hash === undefined) throw new PolicyError(`${where}.${name}: a robot needs a secret (bcrypt hash)`);
    result.set(name, { ...(typeof hash === 'string' ? { hash } : {}), groups: stringList(entry.groups, `${where}.${name}.groups`) });
  }
  return result;
}

/** Reads and checks an access policy document (see config/auth-policy.yaml). */
export function parsePolicy(document: unknown): AccessPolicy {
  const root = (document ?? {}) as Record<string, unknown>;
  const rules = root.rules ?? [];
  if (!Array.isArray(rules)) throw new PolicyError('rules: expected a list');
  return {
    users: accounts(root.users, 'password', 'users'),
    robots: accounts(root.robots, 'secret', 'robots'),
    rules: rules.map((raw: unknown, index): AccessRule => {
      const where = `rules[${index}]`;
      const rule = (raw ?? {}) as Record<string, unknown>;
      const actions = stringList(rule.actions, `${where}.actions`);
      const unknown = actions.find((action) => !knownActions.has(action));
      if (unknown) throw new PolicyError(`${where}.actions: unknown action ${JSON.stringify(unknown)} (pull, push, delete or *)`);
      const parsed: AccessRule = {
        accounts: stringList(rule.accounts, `${where}.accounts`),
        groups: stringList(rule.groups, `${where}.groups`),
        robots: stringList(rule.robots, `${where}.robots`),
        anonymous: rule.anonymous === true,
        authenticated: rule.authenticated === true,
        repositories: stringList(rule.repositories, `${where}.repositories`).map(globToRegExp),
        catalog: rule.catalog === true,
        audit: rule.audit === true,
        operator: rule.operator === true,
        mirrorImport: rule['mirror-import'] === true,
        actions,
      };
      const who = parsed.accounts.length + parsed.groups.length + parsed.robots.length;
      if (who === 0 && !parsed.anonymous && !parsed.authenticated) {
        throw new PolicyError(`${where}: says nobody it applies to (accounts, groups, robots, anonymous or authenticated)`);
      }
      return parsed;
    }),
  };
}

export function loadPolicy(file: string): AccessPolicy {
  const document = readYamlFile(file, 'access policy');
  try {
    return parsePolicy(document);
  } catch (error) {
    throw new PolicyError(`access policy ${file}: ${(error as Error).message}`);
  }
}

function ruleApplies(rule: AccessRule, principal: Principal): boolean {
  if (principal.kind === 'anonymous') return rule.anonymous;
  if (rule.authenticated) return true;
  if (principal.kind === 'robot') return rule.robots.includes(principal.name) || principal.groups.some((group) => rule.groups.includes(group));
  return rule.accounts.includes(principal.name) || principal.groups.some((group) => rule.groups.includes(group));
}

/** What the first applicable rule allows of the asked actions; `*` asked means everything the rule allows. */
export function allowed(ruleActions: readonly string[], asked: readonly string[]): string[] {
  const granted = new Set<string>();
  for (const action of asked) {
    if (action === '*') for (const ruleAction of ruleActions) granted.add(ruleAction);
    else if (actionsCover(ruleActions, action)) granted.add(action);
  }
  return [...granted];
}

function namesResource(rule: AccessRule, scope: Scope): boolean {
  if (scope.type === 'repository') return rule.repositories.some((pattern) => pattern.test(scope.name));
  if (scope.type !== 'registry' || !Object.hasOwn(registryGrants, scope.name)) return false;
  return rule[registryGrants[scope.name as keyof typeof registryGrants]] === true;
}

/** The first rule that applies to the principal and names the resource decides; nothing when none does. */
function firstRuleGrant(policy: AccessPolicy, principal: Principal, scope: Scope): string[] {
  for (const rule of policy.rules) {
    if (!ruleApplies(rule, principal) || !namesResource(rule, scope)) continue;
    return scope.type === 'registry' ? (scope.actions.includes('*') ? ['*'] : []) : allowed(rule.actions, scope.actions);
  }
  return [];
}

/**
 * The part of an asked scope the policy grants: rules are tried in order and the first one that
 * applies to the principal and names the resource decides. What anonymous requests are granted,
 * every signed-in account is granted too (a public image is public to everyone), whatever an
 * earlier rule of the account's says. Unknown resource types get nothing. (System admins and
 * projects: see grantFor in grants.ts, which asks this for the rest.)
 */
export function grant(policy: AccessPolicy, principal: Principal, scope: Scope): AccessEntry {
  const actions = new Set(firstRuleGrant(policy, principal, scope));
  if (principal.kind !== 'anonymous') for (const action of firstRuleGrant(policy, anonymous, scope)) actions.add(action);
  return { type: scope.type, name: scope.name, actions: [...actions] };
}
