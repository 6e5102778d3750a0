import { sql } from 'kysely';
import type { MetadataExecutor } from './database.js';

export interface ProjectRow {
  name: string;
  public: boolean;
  quotaStorage: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface MemberRow {
  project: string;
  account: string;
  role: string;
}

function toProject(row: { name: string; public: number; quota_storage: number | null; created_at: number; updated_at: number }): ProjectRow {
  return {
    name: row.name,
    public: Number(row.public) === 1,
    quotaStorage: row.quota_storage === null ? null : Number(row.quota_storage),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** Inserts a project; a name taken already fails the primary key (isUniqueViolation). */
export async function insertProject(db: MetadataExecutor, project: { name: string; public: boolean; quotaStorage: number | null }, now: number): Promise<void> {
  await db
    .insertInto('projects')
    .values({ name: project.name, public: project.public ? 1 : 0, quota_storage: project.quotaStorage, created_at: now, updated_at: now })
    .execute();
}

export async function findProject(db: MetadataExecutor, name: string): Promise<ProjectRow | undefined> {
  const row = await db.selectFrom('projects').selectAll().where('name', '=', name).executeTakeFirst();
  return row ? toProject(row) : undefined;
}

/** Every project, by name (the directory's copy holds them all). */
export async function listProjects(db: MetadataExecutor): Promise<ProjectRow[]> {
  return (await db.selectFrom('projects').selectAll().orderBy('name').execute()).map(toProject);
}

export async function updateProject(db: MetadataExecutor, name: string, change: { public?: boolean; quotaStorage?: number | null }, now: number): Promise<void> {
  await db
    .updateTable('projects')
    .set({
      ...(change.public !== undefined ? { public: change.public ? 1 : 0 } : {}),
      ...(change.quotaStorage !== undefined ? { quota_storage: change.quotaStorage } : {}),
      updated_at: now,
    })
    .where('name', '=', name)
    .execute();
}

/** Deletes a project with its members and robots. */
export async function deleteProject(db: MetadataExecutor, name: string): Promise<void> {
  await db.deleteFrom('robots').where('project', '=', name).execute();
  await db.deleteFrom('project_members').where('project', '=', name).execute();
  await db.deleteFrom('projects').where('name', '=', name).execute();
}

/** Repositories inside a project: `<name>/…`, or for `library` also the names of one component. */
export async function countProjectRepositories(db: MetadataExecutor, name: string): Promise<number> {
  const escaped = name.replace(/[\\%_]/g, (character) => `\\${character}`);
  const inside = name === 'library' ? sql<boolean>`(name like ${`${escaped}/%`} escape '\\' or name not like '%/%')` : sql<boolean>`name like ${`${escaped}/%`} escape '\\'`;
  const row = await db.selectFrom('repositories').select((eb) => eb.fn.countAll<number>().as('count')).where(inside).executeTakeFirstOrThrow();
  return Number(row.count);
}

/** Sets an account's role in a project (adding it); answers the role it had, if any. */
export async function setMember(db: MetadataExecutor, member: MemberRow, now: number): Promise<string | null> {
  const before = await db.selectFrom('project_members').select('role').where('project', '=', member.project).where('account', '=', member.account).executeTakeFirst();
  await db
    .insertInto('project_members')
    .values({ project: member.project, account: member.account, role: member.role, created_at: now })
    .onConflict((conflict) => conflict.columns(['project', 'account']).doUpdateSet({ role: member.role }))
    .execute();
  return before?.role ?? null;
}

/** Removes an account from a project; answers the role it had, if it was a member. */
export async function deleteMember(db: MetadataExecutor, project: string, account: string): Promise<string | null> {
  const before = await db.selectFrom('project_members').select('role').where('project', '=', project).where('account', '=', account).executeTakeFirst();
  if (!before) return null;
  await db.deleteFrom('project_members').where('project', '=', project).where('account', '=', account).execute();
  return before.role;
}

/** Every membership of every project (the directory's copy holds them all). */
export async function listMembers(db: MetadataExecutor): Promise<MemberRow[]> {
  return db.selectFrom('project_members').select(['project', 'account', 'role']).orderBy('project').orderBy('account').execute();
}

/** A project's robot: its access as written (globs and actions), never its secret's hash beyond sign-in. */
export interface RobotRow {
  name: string;
  project: string;
  secretHash: string;
  access: Array<{ repositories: string[]; actions: string[] }>;
  expiresAt: number | null;
  disabled: boolean;
  createdAt: number;
  updatedAt: number;
}

function toRobot(row: { name: string; project: string; secret_hash: string; access: string; expires_at: number | null; disabled: number; created_at: number; updated_at: number }): RobotRow {
  return {
    name: row.name,
    project: row.project,
    secretHash: row.secret_hash,
    access: JSON.parse(row.access) as RobotRow['access'],
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    disabled: Number(row.disabled) === 1,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** Inserts a robot; a name taken already fails the primary key (isUniqueViolation). */
export async function insertRobot(db: MetadataExecutor, robot: Omit<RobotRow, 'disabled' | 'createdAt' | 'updatedAt'>, now: number): Promise<void> {
  await db
    .insertInto('robots')
    .values({ name: robot.name, project: robot.project, secret_hash: robot.secretHash, access: JSON.stringify(robot.access), expires_at: robot.expiresAt, disabled: 0, created_at: now, updated_at: now })
    .execute();
}

/** Every robot (of one project, when named). */
export async function listRobots(db: MetadataExecutor, project?: string): Promise<RobotRow[]> {
  let query = db.selectFrom('robots').selectAll().orderBy('name');
  if (project !== undefined) query = query.where('project', '=', project);
  return (await query.execute()).map(toRobot);
}

export async function updateRobot(db: MetadataExecutor, name: string, change: { secretHash?: string; disabled?: boolean }, now: number): Promise<void> {
  await db
    .updateTable('robots')
    .set({ ...(change.secretHash !== undefined ? { secret_hash: change.secretHash } : {}), ...(change.disabled !== undefined ? { disabled: change.disabled ? 1 : 0 } : {}), updated_at: now })
    .where('name', '=', name)
    .execute();
}

export async function deleteRobot(db: MetadataExecutor, name: string): Promise<void> {
  await db.deleteFrom('robots').where('name', '=', name).execute();
}
