import type { MetadataExecutor } from './database.js';

/** An account kept in the database. */
export interface AccountRow {
  name: string;
  passwordHash: string;
  admin: boolean;
  disabled: boolean;
  createdAt: number;
  updatedAt: number;
}

function toAccount(row: { name: string; password_hash: string; admin: number; disabled: number; created_at: number; updated_at: number }): AccountRow {
  return {
    name: row.name,
    passwordHash: row.password_hash,
    admin: Number(row.admin) === 1,
    disabled: Number(row.disabled) === 1,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** Inserts an account; a name taken already fails the primary key (isUniqueViolation). */
export async function insertAccount(db: MetadataExecutor, account: { name: string; passwordHash: string; admin: boolean }, now: number): Promise<void> {
  await db
    .insertInto('accounts')
    .values({ name: account.name, password_hash: account.passwordHash, admin: account.admin ? 1 : 0, disabled: 0, created_at: now, updated_at: now })
    .execute();
}

export async function findAccount(db: MetadataExecutor, name: string): Promise<AccountRow | undefined> {
  const row = await db.selectFrom('accounts').selectAll().where('name', '=', name).executeTakeFirst();
  return row ? toAccount(row) : undefined;
}

/** Every account, by name (a directory of people, not of millions). */
export async function listAccounts(db: MetadataExecutor): Promise<AccountRow[]> {
  const rows = await db.selectFrom('accounts').selectAll().orderBy('name').execute();
  return rows.map(toAccount);
}

export interface AccountChange {
  passwordHash?: string;
  admin?: boolean;
  disabled?: boolean;
}

/** Changes an account; answers whether it exists. */
export async function updateAccount(db: MetadataExecutor, name: string, change: AccountChange, now: number): Promise<boolean> {
  const result = await db
    .updateTable('accounts')
    .set({
      ...(change.passwordHash !== undefined ? { password_hash: change.passwordHash } : {}),
      ...(change.admin !== undefined ? { admin: change.admin ? 1 : 0 } : {}),
      ...(change.disabled !== undefined ? { disabled: change.disabled ? 1 : 0 } : {}),
      updated_at: now,
    })
    .where('name', '=', name)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function deleteAccount(db: MetadataExecutor, name: string): Promise<boolean> {
  const result = await db.deleteFrom('accounts').where('name', '=', name).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Counts the directory's version up: call it in every transaction that changes accounts. */
export async function bumpDirectoryVersion(db: MetadataExecutor): Promise<void> {
  await db.updateTable('directory_version').set((eb) => ({ value: eb('value', '+', 1) })).where('name', '=', 'directory').execute();
}

/** The directory's version: it differs from the one a copy was read at when anything changed since. */
export async function readDirectoryVersion(db: MetadataExecutor): Promise<number> {
  const row = await db.selectFrom('directory_version').select('value').where('name', '=', 'directory').executeTakeFirstOrThrow();
  return Number(row.value);
}
