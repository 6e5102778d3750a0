import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import type { DatabaseAccounts, StoredAccount } from './database-accounts.js';
import { PolicyError, robotPrefix, type AccessPolicy, type Principal } from './policy.js';

/** Compared against when the account is unknown, so that a miss costs as long as a wrong password. */
const missHash = bcrypt.hashSync('no such account', 10);

/**
 * Reads an htpasswd file: `name:hash` lines; only bcrypt hashes (`htpasswd -B`) are accepted, as in
 * Distribution. Blank lines and `#` comments are skipped.
 */
export function loadHtpasswd(file: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new PolicyError(`cannot read htpasswd file ${file}: ${(error as Error).message}`);
  }
  const users = new Map<string, string>();
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[aby]\$\d\d\$/.test(hash)) {
      throw new PolicyError(`${file} line ${index + 1}: expected name:bcrypt-hash (create entries with htpasswd -B)`);
    }
    users.set(name, hash);
  }
  return users;
}

/**
 * Checks user names and passwords (or robot names and secrets) against the policy and the htpasswd
 * file, then the accounts of the database: a name the files hold is theirs.
 */
export class AccountDirectory {
  constructor(
    private readonly policy: AccessPolicy,
    private readonly htpasswd: ReadonlyMap<string, string> = new Map(),
    private readonly database: DatabaseAccounts | null = null,
  ) {}

  private stored(name: string): StoredAccount | undefined {
    return this.policy.users.get(name)?.hash !== undefined || this.htpasswd.has(name) ? undefined : this.database?.current.get(name);
  }

  /**
   * Whether tokens of the account are refused before they expire: an account of the database that is
   * disabled; a robot of a project (`robot$<project>+<name>`) that is disabled, expired or gone.
   */
  refuses(account: string): boolean {
    if (account.startsWith(robotPrefix)) {
      const name = account.slice(robotPrefix.length);
      if (this.policy.robots.has(name) || !this.database) return false;
      return name.includes('+') && this.database.liveRobot(account) === undefined;
    }
    return this.stored(account)?.disabled === true;
  }

  /** The principal an account name stands for, if the account still exists (for refresh tokens). */
  principalOf(account: string): Principal | null {
    if (account.startsWith(robotPrefix)) {
      const name = account.slice(robotPrefix.length);
      const robot = this.policy.robots.get(name);
      if (robot) return { kind: 'robot', name, groups: robot.groups };
      return this.database?.liveRobot(account) ? { kind: 'robot', name, groups: [] } : null;
    }
    const stored = this.stored(account);
    if (stored) return stored.disabled ? null : { kind: 'user', name: account, groups: [], admin: stored.admin };
    const entry = this.policy.users.get(account);
    if (!entry?.hash && !this.htpasswd.has(account)) return null;
    return { kind: 'user', name: account, groups: entry?.groups ?? [] };
  }

  /** The principal these credentials prove, or null when they prove nothing. */
  async authenticate(username: string, password: string): Promise<Principal | null> {
    if (username.startsWith(robotPrefix)) {
      const name = username.slice(robotPrefix.length);
      const robot = this.policy.robots.get(name);
      const stored = robot ? undefined : this.database?.robots.get(username);
      const matches = await bcrypt.compare(password, robot?.hash ?? stored?.secretHash ?? missHash);
      if (robot) return matches ? { kind: 'robot', name, groups: robot.groups } : null;
      // A robot of the database signs in while it is enabled and unexpired.
      return stored && matches && this.database?.liveRobot(username) ? { kind: 'robot', name, groups: [] } : null;
    }
    const stored = this.stored(username);
    if (stored) {
      const matches = await bcrypt.compare(password, stored.passwordHash);
      return matches && !stored.disabled ? { kind: 'user', name: username, groups: [], admin: stored.admin } : null;
    }
    const entry = this.policy.users.get(username);
    const hash = entry?.hash ?? this.htpasswd.get(username);
    const matches = await bcrypt.compare(password, hash ?? missHash);
    return hash && matches ? { kind: 'user', name: username, groups: entry?.groups ?? [] } : null;
  }
}
