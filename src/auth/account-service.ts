import { deleteAccount, findAccount, insertAccount, listAccounts, updateAccount, type AccountRow } from '../metadata/accounts.js';
import type { RequestOrigin } from '../metadata/audit.js';
import { isUniqueViolation, type MetadataDb, type MetadataExecutor } from '../metadata/database.js';
import { RegistryError } from '../oci/errors.js';
import type { DirectoryChanges } from './directory-changes.js';
import { robotPrefix } from './policy.js';
import { hashSecret } from './secrets.js';

/** An account as the API and the command line show it: never its password's hash. */
export interface AccountView {
  name: string;
  admin: boolean;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
}

/** What a change of an account may set. */
export interface AccountPatch {
  password?: string;
  admin?: boolean;
  disabled?: boolean;
}

/** Names as docker login takes them, without the robot prefix: letters, digits, `.`, `_`, `-`, `@`. */
const accountName = /^[a-z0-9][a-z0-9._@-]{0,63}$/;
const minimumPasswordLength = 8;

function view(row: AccountRow): AccountView {
  return { name: row.name, admin: row.admin, disabled: row.disabled, createdAt: new Date(row.createdAt).toISOString(), updatedAt: new Date(row.updatedAt).toISOString() };
}

function unknownAccount(name: string): RegistryError {
  return new RegistryError('ACCOUNT_UNKNOWN', { message: `no account ${name}`, detail: { name } });
}

export function checkAccountName(name: string): void {
  if (name.startsWith(robotPrefix) || !accountName.test(name)) {
    throw new RegistryError('REQUEST_INVALID', {
      message: `account name ${JSON.stringify(name.slice(0, 80))}: lower-case letters, digits, '.', '_', '-' and '@', at most 64, starting with a letter or digit (robot$ names are robots')`,
    });
  }
}

export function checkPassword(password: string): void {
  if (password.length < minimumPasswordLength) {
    throw new RegistryError('REQUEST_INVALID', { message: `a password has at least ${minimumPasswordLength} characters` });
  }
}

/** What an account's event records of it: its flags, never a secret. */
function flags(row: { admin: boolean; disabled: boolean } | undefined): { admin: boolean; disabled: boolean } | null {
  return row ? { admin: row.admin, disabled: row.disabled } : null;
}

/**
 * Accounts kept in the database: created by system admins (or on the command line, for the first
 * one), changed, disabled and deleted. Each change is an audit event in its own transaction (who,
 * from where, the account's flags before and after, whether its password was set; never a secret),
 * and counts the directory's version up so every replica reads its accounts again within a second.
 */
export class AccountService {
  constructor(
    private readonly metadata: MetadataDb,
    private readonly changes: DirectoryChanges,
  ) {}

  async list(): Promise<AccountView[]> {
    return (await listAccounts(this.metadata)).map(view);
  }

  async get(name: string): Promise<AccountView> {
    const row = await findAccount(this.metadata, name);
    if (!row) throw unknownAccount(name);
    return view(row);
  }

  async create(input: { name: string; password: string; admin?: boolean }, origin: RequestOrigin): Promise<AccountView> {
    checkAccountName(input.name);
    checkPassword(input.password);
    const passwordHash = hashSecret(input.password);
    try {
      await this.changing(origin, async (transaction, now) => {
        await insertAccount(transaction, { name: input.name, passwordHash, admin: input.admin === true }, now);
        return { action: 'created', before: null, after: { admin: input.admin === true, disabled: false }, passwordSet: true, name: input.name };
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new RegistryError('CONFLICT', { message: `account ${input.name} exists already`, detail: { name: input.name } });
      throw error;
    }
    return this.get(input.name);
  }

  async change(name: string, patch: AccountPatch, origin: RequestOrigin): Promise<AccountView> {
    if (patch.password !== undefined) checkPassword(patch.password);
    const passwordHash = patch.password !== undefined ? hashSecret(patch.password) : undefined;
    await this.changing(origin, async (transaction, now) => {
      const before = await findAccount(transaction, name);
      if (!before) throw unknownAccount(name);
      await updateAccount(transaction, name, { ...(passwordHash !== undefined ? { passwordHash } : {}), ...(patch.admin !== undefined ? { admin: patch.admin } : {}), ...(patch.disabled !== undefined ? { disabled: patch.disabled } : {}) }, now);
      const after = { admin: patch.admin ?? before.admin, disabled: patch.disabled ?? before.disabled };
      return { action: 'changed', before: flags(before), after, passwordSet: passwordHash !== undefined, name };
    });
    return this.get(name);
  }

  async delete(name: string, origin: RequestOrigin): Promise<void> {
    await this.changing(origin, async (transaction) => {
      const before = await findAccount(transaction, name);
      if (!before) throw unknownAccount(name);
      await deleteAccount(transaction, name);
      return { action: 'deleted', before: flags(before), after: null, passwordSet: false, name };
    });
  }

  /** One change of an account, through the directory's one way of changing. */
  private changing(origin: RequestOrigin, work: (transaction: MetadataExecutor, now: number) => Promise<{ action: string; name: string; before: object | null; after: object | null; passwordSet: boolean }>): Promise<void> {
    return this.changes.change('account', origin, async (transaction, now) => {
      const done = await work(transaction, now);
      return { action: done.action, detail: { account: done.name, before: done.before, after: done.after, ...(done.passwordSet ? { password: 'set' } : {}) } };
    });
  }
}
