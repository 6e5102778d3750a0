import type { Logger } from 'pino';
import { listAccounts, readDirectoryVersion } from '../metadata/accounts.js';
import { listMembers, listProjects, listRobots } from '../metadata/projects.js';
import { globToRegExp } from '../oci/name-patterns.js';
import { systemClock, type Clock } from '../clock.js';
import type { MetadataDb } from '../metadata/database.js';

/** An account of the database as sign-in sees it. */
export interface StoredAccount {
  name: string;
  passwordHash: string;
  admin: boolean;
  disabled: boolean;
}

/** A project's roles, from the least to the most it may do. */
export const projectRoles = ['guest', 'developer', 'maintainer', 'admin'] as const;
export type ProjectRole = (typeof projectRoles)[number];

/** A project as grants see it: who may pull it without a role, and each member's role. */
export interface StoredProject {
  name: string;
  public: boolean;
  members: ReadonlyMap<string, ProjectRole>;
}

/** A robot of a project as sign-in and grants see it: its access as patterns over whole repository names. */
export interface StoredRobot {
  /** `robot$<project>+<name>`. */
  name: string;
  project: string;
  secretHash: string;
  access: Array<{ repositories: RegExp[]; actions: readonly string[] }>;
  expiresAt: number | null;
  disabled: boolean;
}

/** How often a replica asks whether the accounts changed: a change elsewhere is seen within this. */
const checkEveryMs = 1000;

/**
 * This replica's copy of the accounts kept in the database, so that sign-in and every request's
 * grants are answered from memory. The copy is read again when the directory's version (counted up
 * in every transaction that changes an account, whoever makes it: another replica, the command line)
 * differs from the one it was read at, which is asked every second, and at once after a change made
 * through this process (`changed`).
 *
 * The race it closes: a copy read while a change commits must not be kept as current. The version is
 * read before the accounts, so a copy can only be older than the version it is filed under, and the
 * next check reads it again.
 */
export class DatabaseAccounts {
  private accounts: ReadonlyMap<string, StoredAccount> = new Map();
  private projectCopy: ReadonlyMap<string, StoredProject> = new Map();
  private robotCopy: ReadonlyMap<string, StoredRobot> = new Map();
  private version = Number.NaN;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<boolean> | null = null;
  /** Counted up whenever the copy is replaced: what was proven with the old one is proven again. */
  generation = 0;

  constructor(
    private readonly metadata: MetadataDb,
    /** Robots expire by it. */
    readonly clock: Clock = systemClock,
  ) {}

  /** The robots of projects, by their whole name, as last read. */
  get robots(): ReadonlyMap<string, StoredRobot> {
    return this.robotCopy;
  }

  /** A robot that may sign in and whose tokens count now: not disabled, not expired. */
  liveRobot(name: string): StoredRobot | undefined {
    const robot = this.robotCopy.get(name);
    return robot && !robot.disabled && (robot.expiresAt === null || robot.expiresAt > this.clock.now()) ? robot : undefined;
  }

  /** The copy in force (empty until `load`). */
  get current(): ReadonlyMap<string, StoredAccount> {
    return this.accounts;
  }

  /** The projects with their members, as last read. */
  get projects(): ReadonlyMap<string, StoredProject> {
    return this.projectCopy;
  }

  /** Reads the accounts now (at start: a database that cannot be read stops it). */
  async load(): Promise<void> {
    await this.refresh();
  }

  /** Reads the copy again if the version moved; answers whether it did. */
  refresh(): Promise<boolean> {
    this.refreshing ??= (async () => {
      try {
        const version = await readDirectoryVersion(this.metadata);
        if (version === this.version) return false;
        const [rows, projects, members, robots] = await Promise.all([listAccounts(this.metadata), listProjects(this.metadata), listMembers(this.metadata), listRobots(this.metadata)]);
        this.robotCopy = new Map(
          robots.map((robot) => [
            robot.name,
            {
              name: robot.name,
              project: robot.project,
              secretHash: robot.secretHash,
              // Globs are written inside the project: `app`, `tools/*` → team-x/app, team-x/tools/*.
              access: robot.access.map((entry) => ({ repositories: entry.repositories.map((glob) => globToRegExp(`${robot.project}/${glob}`)), actions: entry.actions })),
              expiresAt: robot.expiresAt,
              disabled: robot.disabled,
            },
          ]),
        );
        this.accounts = new Map(rows.map((row) => [row.name, { name: row.name, passwordHash: row.passwordHash, admin: row.admin, disabled: row.disabled }]));
        const memberships = new Map<string, Map<string, ProjectRole>>();
        for (const member of members) {
          if (!memberships.has(member.project)) memberships.set(member.project, new Map());
          memberships.get(member.project)!.set(member.account, member.role as ProjectRole);
        }
        this.projectCopy = new Map(projects.map((project) => [project.name, { name: project.name, public: project.public, members: memberships.get(project.name) ?? new Map() }]));
        this.version = version;
        this.generation++;
        return true;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /**
   * After a change through this process: read at once, not at the next check. A read already under
   * way may have begun before the change committed, so it is waited for and another made.
   */
  async changed(): Promise<void> {
    await this.refreshing?.catch(() => false);
    await this.refresh();
  }

  /** Checks every second; a check that fails keeps the copy in force and is logged. */
  watch(logger: Logger): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.refresh().then(
        (moved) => moved && logger.info({ accounts: this.accounts.size }, 'accounts of the database reloaded'),
        (error: unknown) => logger.warn({ problem: (error as Error).message }, 'accounts of the database not reloaded: the copy in force stays'),
      );
    }, checkEveryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
