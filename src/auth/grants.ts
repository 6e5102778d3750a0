import type { Accounts } from './account-files.js';
import type { ProjectRole } from './database-accounts.js';
import { allowed, grant, openToAccountsPolicy, robotPrefix, type Principal } from './policy.js';
import type { AccessEntry, Scope } from './scopes.js';

/** What each role of a project may do to its repositories (managing the project is checked apart). */
export const roleActions: Record<ProjectRole, readonly string[]> = {
  guest: ['pull'],
  developer: ['pull', 'push'],
  maintainer: ['pull', 'push', 'delete'],
  admin: ['pull', 'push', 'delete'],
};

/** The project a repository name belongs to: its first path component; one-component names belong to `library`, as in Harbor. */
export function projectOf(repository: string): string {
  const slash = repository.indexOf('/');
  return slash < 0 ? 'library' : repository.slice(0, slash);
}

/**
 * The part of an asked scope the accounts in force grant. A system admin is granted whatever it
 * asks. Inside a project of the database, grants come from the project (anyone pulls a public one;
 * a member may do what its role may) and from the rules of a policy file, if one is given: the
 * default without one, every signed-in account may do everything, does not reach into projects.
 * Outside projects, the policy (or that default) decides, as before there were projects.
 */
export function grantFor(accounts: Accounts, principal: Principal, scope: Scope): AccessEntry {
  if (principal.kind === 'user' && principal.admin === true) return { type: scope.type, name: scope.name, actions: [...scope.actions] };
  // A robot of a project may use its access, inside its project, and nothing else (not even a public project's pulls).
  const robotName = principal.kind === 'robot' ? `${robotPrefix}${principal.name}` : '';
  if (principal.kind === 'robot' && !accounts.policy.robots.has(principal.name) && accounts.database?.robots.has(robotName)) {
    const robot = accounts.database.liveRobot(robotName);
    if (!robot || scope.type !== 'repository' || projectOf(scope.name) !== robot.project) return { type: scope.type, name: scope.name, actions: [] };
    const actions = new Set<string>();
    for (const entry of robot.access) if (entry.repositories.some((pattern) => pattern.test(scope.name))) for (const action of allowed(entry.actions, scope.actions)) actions.add(action);
    return { type: scope.type, name: scope.name, actions: [...actions] };
  }
  const project = scope.type === 'repository' ? accounts.database?.projects.get(projectOf(scope.name)) : undefined;
  if (!project) return grant(accounts.policy, principal, scope);
  const actions = new Set(accounts.policy === openToAccountsPolicy ? [] : grant(accounts.policy, principal, scope).actions);
  if (project.public) for (const action of allowed(['pull'], scope.actions)) actions.add(action);
  const role = principal.kind === 'user' ? project.members.get(principal.name) : undefined;
  if (role) for (const action of allowed(roleActions[role], scope.actions)) actions.add(action);
  return { type: scope.type, name: scope.name, actions: [...actions] };
}
