import type { Clock } from '../clock.js';
import type { RequestOrigin } from '../metadata/audit.js';
import type { DirectoryChanges } from './directory-changes.js';
import { isUniqueViolation, type MetadataDb, type MetadataExecutor } from '../metadata/database.js';
import { randomBytes } from 'node:crypto';
import {
  countProjectRepositories,
  deleteMember,
  deleteProject,
  deleteRobot,
  findProject,
  insertProject,
  insertRobot,
  listMembers,
  listProjects,
  listRobots,
  setMember,
  updateProject,
  updateRobot,
  type ProjectRow,
  type RobotRow,
} from '../metadata/projects.js';
import { parseDuration } from '../config/values.js';
import { hashSecret } from './secrets.js';
import { robotPrefix } from './policy.js';
import { RegistryError } from '../oci/errors.js';
import type { Accounts } from './account-files.js';
import { projectRoles, type DatabaseAccounts, type ProjectRole } from './database-accounts.js';

/** A project as the API shows it. */
export interface ProjectView {
  name: string;
  public: boolean;
  quota: { storage: number | null };
  createdAt: string;
  updatedAt: string;
}

/** Who calls: the account ('' anonymous), and whether it is a system admin (auth off: everyone is). */
export interface Caller {
  account: string;
  admin: boolean;
}

/** A robot as the API shows it: never its secret, which is answered once, when made or refreshed. */
export interface RobotView {
  name: string;
  access: Array<{ repositories: string[]; actions: string[] }>;
  expiresAt: string | null;
  disabled: boolean;
  createdAt: string;
}

const robotActions = new Set(['pull', 'push', 'delete']);
const robotShortName = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

function robotView(row: RobotRow): RobotView {
  return { name: row.name, access: row.access, expiresAt: row.expiresAt === null ? null : new Date(row.expiresAt).toISOString(), disabled: row.disabled, createdAt: new Date(row.createdAt).toISOString() };
}

/** `robot$<project>+<name>` from the short name or the whole one. */
export function robotNameOf(project: string, name: string): string {
  return name.startsWith(robotPrefix) ? name : `${robotPrefix}${project}+${name}`;
}

/** Checks a robot's access as the API takes it: [{repositories: [globs inside the project], actions: [pull, push, delete]}]. */
function checkAccess(access: unknown): Array<{ repositories: string[]; actions: string[] }> {
  const invalid = (reason: string) => new RegistryError('REQUEST_INVALID', { message: `access: ${reason}` });
  if (!Array.isArray(access) || access.length === 0) throw invalid('expected [{"repositories": [globs], "actions": [pull, push, delete]}]');
  return access.map((entry: unknown, index) => {
    const { repositories, actions, ...rest } = (entry ?? {}) as { repositories?: unknown; actions?: unknown };
    if (Object.keys(rest).length > 0) throw invalid(`[${index}]: only repositories and actions`);
    if (!Array.isArray(repositories) || repositories.length === 0 || !repositories.every((glob) => typeof glob === 'string' && glob !== '' && !glob.startsWith('/'))) {
      throw invalid(`[${index}].repositories: globs inside the project (app, tools/*, **)`);
    }
    if (!Array.isArray(actions) || actions.length === 0 || !actions.every((action) => typeof action === 'string' && robotActions.has(action))) {
      throw invalid(`[${index}].actions: pull, push or delete`);
    }
    return { repositories: repositories as string[], actions: [...new Set(actions as string[])] };
  });
}

/** A project's name is one path component of a repository name. */
const projectName = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;

function view(row: ProjectRow): ProjectView {
  return { name: row.name, public: row.public, quota: { storage: row.quotaStorage }, createdAt: new Date(row.createdAt).toISOString(), updatedAt: new Date(row.updatedAt).toISOString() };
}

function unknownProject(name: string): RegistryError {
  return new RegistryError('PROJECT_UNKNOWN', { message: `no project ${name}`, detail: { name } });
}

function denied(caller: Caller, what: string): RegistryError {
  const who = caller.account === '' ? 'anonymous' : caller.account;
  return new RegistryError('DENIED', { message: `${who} may not ${what}`, detail: { account: who } });
}

export function isProjectRole(value: unknown): value is ProjectRole {
  return typeof value === 'string' && (projectRoles as readonly string[]).includes(value);
}

/**
 * Projects and their members, kept in the database. System admins create and delete projects;
 * a project's admins (and system admins) change its settings and members; members and anyone, for
 * a public project, see it. Each change is an audit event in its transaction and counts the
 * directory's version up, so every replica's grants follow within a second.
 */
export class ProjectService {
  constructor(
    private readonly metadata: MetadataDb,
    /** Robots expire by it. */
    private readonly clock: Clock,
    private readonly changes: DirectoryChanges,
    /** The copy grants read (null: auth off, nothing is kept). */
    private readonly copy: DatabaseAccounts | null,
    /** The accounts of the files and the database, to refuse a member that does not exist (null: auth off, any name). */
    private readonly accounts: { readonly current: Accounts } | null,
  ) {}

  /** The caller as the directory knows it: a system admin of the database, or auth off. */
  callerOf(grant: { account: string; unrestricted: boolean } | undefined): Caller {
    if (!grant || grant.unrestricted) return { account: grant?.account ?? '', admin: true };
    return { account: grant.account, admin: this.copy?.current.get(grant.account)?.admin === true && this.copy.current.get(grant.account)?.disabled !== true };
  }

  private roleOf(project: string, account: string): ProjectRole | undefined {
    return account === '' ? undefined : this.copy?.projects.get(project)?.members.get(account);
  }

  private async visible(caller: Caller, name: string): Promise<ProjectRow> {
    const row = await findProject(this.metadata, name);
    if (!row || !(caller.admin || row.public || this.roleOf(name, caller.account))) throw unknownProject(name);
    return row;
  }

  private async manageable(caller: Caller, name: string, what: string): Promise<ProjectRow> {
    const row = await this.visible(caller, name);
    if (!caller.admin && this.roleOf(name, caller.account) !== 'admin') throw denied(caller, `${what} of project ${name} (it needs the project's admin role)`);
    return row;
  }

  /** Projects the caller sees (every one for a system admin), by name, `q` a part of the name. */
  async list(caller: Caller, page: { q?: string; last?: string; limit: number }): Promise<{ projects: ProjectView[]; more: boolean }> {
    const rows = (await listProjects(this.metadata)).filter(
      (row) => (caller.admin || row.public || this.roleOf(row.name, caller.account) !== undefined) && (page.q === undefined || row.name.includes(page.q)) && (page.last === undefined || row.name > page.last),
    );
    return { projects: rows.slice(0, page.limit).map(view), more: rows.length > page.limit };
  }

  async get(caller: Caller, name: string): Promise<ProjectView> {
    return view(await this.visible(caller, name));
  }

  async create(caller: Caller, input: { name: string; public?: boolean; quotaStorage?: number | null }, origin: RequestOrigin): Promise<ProjectView> {
    if (!caller.admin) throw denied(caller, 'create projects (it needs a system admin)');
    if (!projectName.test(input.name) || input.name.length > 64) {
      throw new RegistryError('REQUEST_INVALID', { message: `project name ${JSON.stringify(input.name.slice(0, 80))}: one component of a repository name (lower-case letters and digits, separated by . _ __ or -), at most 64` });
    }
    try {
      await this.changing(origin, input.name, async (transaction, now) => {
        await insertProject(transaction, { name: input.name, public: input.public === true, quotaStorage: input.quotaStorage ?? null }, now);
        return { action: 'created', detail: { after: { public: input.public === true, quota: input.quotaStorage ?? null } } };
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new RegistryError('CONFLICT', { message: `project ${input.name} exists already`, detail: { name: input.name } });
      throw error;
    }
    return this.get(caller, input.name);
  }

  async change(caller: Caller, name: string, patch: { public?: boolean; quotaStorage?: number | null }, origin: RequestOrigin): Promise<ProjectView> {
    const before = await this.manageable(caller, name, 'change the settings');
    await this.changing(origin, name, async (transaction, now) => {
      await updateProject(transaction, name, patch, now);
      return { action: 'changed', detail: { before: { public: before.public, quota: before.quotaStorage }, after: { public: patch.public ?? before.public, quota: patch.quotaStorage !== undefined ? patch.quotaStorage : before.quotaStorage } } };
    });
    return this.get(caller, name);
  }

  /** Refused while repositories are inside, unless `force`: then the project goes (its members and settings) and its repositories stay, outside any project. */
  async delete(caller: Caller, name: string, force: boolean, origin: RequestOrigin): Promise<void> {
    if (!caller.admin) throw denied(caller, 'delete projects (it needs a system admin)');
    const before = await this.visible(caller, name);
    await this.changing(origin, name, async (transaction) => {
      const repositories = await countProjectRepositories(transaction, name);
      if (repositories > 0 && !force) {
        throw new RegistryError('CONFLICT', { message: `project ${name} holds ${repositories} repositories: delete them first, or pass ?force=true`, detail: { name, repositories } });
      }
      await deleteProject(transaction, name);
      return { action: 'deleted', detail: { before: { public: before.public, quota: before.quotaStorage }, repositories } };
    });
  }

  async members(caller: Caller, name: string): Promise<Array<{ account: string; role: ProjectRole }>> {
    await this.visible(caller, name);
    if (!caller.admin && this.roleOf(name, caller.account) === undefined) throw denied(caller, `list the members of project ${name}`);
    return (await listMembers(this.metadata)).filter((member) => member.project === name).map((member) => ({ account: member.account, role: member.role as ProjectRole }));
  }

  async setMember(caller: Caller, name: string, account: string, role: ProjectRole, origin: RequestOrigin): Promise<{ account: string; role: ProjectRole }> {
    await this.manageable(caller, name, 'change the members');
    if (this.accounts && this.accounts.current.directory.principalOf(account) === null) {
      throw new RegistryError('ACCOUNT_UNKNOWN', { message: `no account ${account}`, detail: { name: account } });
    }
    await this.changing(origin, name, async (transaction, now) => {
      const before = await setMember(transaction, { project: name, account, role }, now);
      return { action: 'member-set', detail: { account, before, after: role } };
    });
    return { account, role };
  }

  async removeMember(caller: Caller, name: string, account: string, origin: RequestOrigin): Promise<void> {
    await this.manageable(caller, name, 'change the members');
    await this.changing(origin, name, async (transaction) => {
      const before = await deleteMember(transaction, name, account);
      if (before === null) throw new RegistryError('ACCOUNT_UNKNOWN', { message: `${account} is not a member of project ${name}`, detail: { name: account } });
      return { action: 'member-removed', detail: { account, before, after: null } };
    });
  }

  /** Managing a project's robots: its maintainers and admins, and system admins. */
  private async robotManager(caller: Caller, project: string): Promise<void> {
    await this.visible(caller, project);
    const role = this.roleOf(project, caller.account);
    if (!caller.admin && role !== 'maintainer' && role !== 'admin') throw denied(caller, `manage the robots of project ${project} (it needs the maintainer or admin role)`);
  }

  private async robotOf(project: string, name: string): Promise<RobotRow> {
    const whole = robotNameOf(project, name);
    const robot = (await listRobots(this.metadata, project)).find((row) => row.name === whole);
    if (!robot) throw new RegistryError('ACCOUNT_UNKNOWN', { message: `no robot ${whole} in project ${project}`, detail: { name: whole } });
    return robot;
  }

  async robots(caller: Caller, project: string): Promise<RobotView[]> {
    await this.robotManager(caller, project);
    return (await listRobots(this.metadata, project)).map(robotView);
  }

  /** A new robot; its secret is answered here once and kept only as a hash. `expiresIn`: a duration (30d) or never. */
  async createRobot(caller: Caller, project: string, input: { name: string; access: unknown; expiresIn?: string }, origin: RequestOrigin): Promise<{ name: string; secret: string; expiresAt: string | null }> {
    await this.robotManager(caller, project);
    if (!robotShortName.test(input.name) || input.name.length > 64) throw new RegistryError('REQUEST_INVALID', { message: `robot name ${JSON.stringify(input.name.slice(0, 80))}: lower-case letters and digits, separated by . _ or -, at most 64` });
    const access = checkAccess(input.access);
    let lifetimeMs: number | null = null;
    if (input.expiresIn !== undefined && input.expiresIn !== 'never') {
      try {
        lifetimeMs = parseDuration(input.expiresIn, 'expiresIn');
      } catch {
        throw new RegistryError('REQUEST_INVALID', { message: `expiresIn: a duration such as 30d or 12h, or never` });
      }
    }
    const name = robotNameOf(project, input.name);
    const secret = randomBytes(32).toString('base64url');
    const expiresAt = lifetimeMs === null ? null : this.clock.now() + lifetimeMs;
    try {
      await this.changing(origin, project, async (transaction, now) => {
        await insertRobot(transaction, { name, project, secretHash: hashSecret(secret), access, expiresAt }, now);
        return { action: 'robot-created', detail: { robot: name, access, expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString() } };
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new RegistryError('CONFLICT', { message: `robot ${name} exists already`, detail: { name } });
      throw error;
    }
    return { name, secret, expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString() };
  }

  /** `refresh`: a new secret (answered once; the old one stops working); `disabled`: it may not sign in, its tokens are refused. */
  async changeRobot(caller: Caller, project: string, name: string, patch: { refresh?: boolean; disabled?: boolean }, origin: RequestOrigin): Promise<RobotView & { secret?: string }> {
    await this.robotManager(caller, project);
    const before = await this.robotOf(project, name);
    const secret = patch.refresh === true ? randomBytes(32).toString('base64url') : undefined;
    await this.changing(origin, project, async (transaction, now) => {
      await updateRobot(transaction, before.name, { ...(secret !== undefined ? { secretHash: hashSecret(secret) } : {}), ...(patch.disabled !== undefined ? { disabled: patch.disabled } : {}) }, now);
      return { action: 'robot-changed', detail: { robot: before.name, before: { disabled: before.disabled }, after: { disabled: patch.disabled ?? before.disabled }, ...(secret !== undefined ? { secret: 'refreshed' } : {}) } };
    });
    return { ...robotView(await this.robotOf(project, name)), ...(secret !== undefined ? { secret } : {}) };
  }

  async deleteRobot(caller: Caller, project: string, name: string, origin: RequestOrigin): Promise<void> {
    await this.robotManager(caller, project);
    const before = await this.robotOf(project, name);
    await this.changing(origin, project, async (transaction) => {
      await deleteRobot(transaction, before.name);
      return { action: 'robot-deleted', detail: { robot: before.name } };
    });
  }

  /** Who the caller is, and its projects with its role in each. */
  me(caller: Caller): { name: string; admin: boolean; projects: Array<{ name: string; role: ProjectRole }> } {
    const projects = [...(this.copy?.projects.values() ?? [])]
      .filter((project) => project.members.has(caller.account))
      .map((project) => ({ name: project.name, role: project.members.get(caller.account)! }));
    return { name: caller.account, admin: caller.admin, projects };
  }

  /** One change of a project (its settings, members or robots), through the directory's one way of changing. */
  private changing(origin: RequestOrigin, project: string, work: (transaction: MetadataExecutor, now: number) => Promise<{ action: string; detail: Record<string, unknown> }>): Promise<void> {
    return this.changes.change('project', origin, async (transaction, now) => {
      const done = await work(transaction, now);
      return { action: done.action, detail: { project, ...done.detail } };
    });
  }
}
