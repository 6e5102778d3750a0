import type { Logger } from 'pino';
import { watchFiles } from '../file-watch.js';
import { AccountDirectory, loadHtpasswd } from './accounts.js';
import type { DatabaseAccounts } from './database-accounts.js';
import { loadPolicy, openToAccountsPolicy, type AccessPolicy } from './policy.js';

/** The accounts and rules in force: read together from the policy and htpasswd files. */
export interface Accounts {
  policy: AccessPolicy;
  directory: AccountDirectory;
  /** The accounts and projects of the database (null: the files alone). */
  database: DatabaseAccounts | null;
  /** Goes up with every reload, so that what was proven with the old files is proven again. */
  generation: number;
}

export interface AccountFileNames {
  /** The access policy file ('' : every authenticated account may do everything). */
  policy: string;
  /** The htpasswd file (''  : none). */
  htpasswd: string;
}

function readAccounts(files: AccountFileNames, generation: number, database: DatabaseAccounts | null): Accounts {
  const policy = files.policy !== '' ? loadPolicy(files.policy) : openToAccountsPolicy;
  const htpasswd = files.htpasswd !== '' ? loadHtpasswd(files.htpasswd) : new Map<string, string>();
  return { policy, directory: new AccountDirectory(policy, htpasswd, database), database, generation };
}

/**
 * The policy and htpasswd files, read at start (a bad file stops the start), again on SIGHUP and
 * when either changes. A file that cannot be read or parsed keeps the accounts in force, with the
 * reason logged, so a half-edited policy never locks everyone out. Requests read `current` once
 * each, so a request is judged wholly by the old files or wholly by the new.
 */
export class AccountFiles {
  private accounts: Accounts;
  private stopWatching: (() => void) | null = null;

  constructor(
    readonly files: AccountFileNames,
    /** The accounts of the database, beside the files (null: the files alone). */
    private readonly database: DatabaseAccounts | null = null,
  ) {
    this.accounts = readAccounts(files, 0, database);
  }

  /** The files' accounts and rules, with the database's accounts as last read (a change of either is a new generation). */
  get current(): Accounts {
    return this.database ? { ...this.accounts, generation: this.accounts.generation + this.database.generation } : this.accounts;
  }

  reload(reason: string, logger: Logger): void {
    const names = { policyFile: this.files.policy || null, htpasswdFile: this.files.htpasswd || null };
    try {
      this.accounts = readAccounts(this.files, this.accounts.generation + 1, this.database);
      const { policy } = this.accounts;
      logger.info({ reason, ...names, users: policy.users.size, robots: policy.robots.size, rules: policy.rules.length }, 'accounts reloaded');
    } catch (error) {
      logger.error({ reason, ...names, problem: (error as Error).message }, 'accounts not reloaded: the files in use before stay in use');
    }
  }

  watch(logger: Logger): void {
    this.database?.watch(logger);
    const watched = [this.files.policy, this.files.htpasswd].filter((file) => file !== '');
    if (watched.length > 0 && !this.stopWatching) this.stopWatching = watchFiles(watched, () => this.reload('file changed', logger));
  }

  stop(): void {
    this.database?.stop();
    this.stopWatching?.();
    this.stopWatching = null;
  }
}
