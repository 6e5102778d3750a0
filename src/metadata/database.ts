import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import {
  sql,
  CompiledQuery,
  Kysely,
  Migrator,
  PostgresAdapter,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type SqliteDialectConfig,
  type Migration,
  type MigrationProvider,
  type Transaction,
} from 'kysely';
import * as initial from './migrations/0001-initial.js';
import * as mirror from './migrations/0002-mirror.js';
import * as mirrorHistoryReferrers from './migrations/0003-mirror-history-referrers.js';
import * as mirrorHistoryAction from './migrations/0004-mirror-history-action.js';
import * as garbageCollection from './migrations/0005-gc.js';
import * as mirrorEviction from './migrations/0006-mirror-eviction.js';
import * as audit from './migrations/0007-audit.js';
import * as notifications from './migrations/0008-notifications.js';
import * as tagChangeSignals from './migrations/0009-tag-changes.js';
import * as repositoryPushes from './migrations/0010-repository-pushes.js';
import * as uploadOwnersReadiness from './migrations/0011-upload-owners-readiness.js';
import * as accounts from './migrations/0012-accounts.js';
import * as projects from './migrations/0013-projects.js';
import * as robots from './migrations/0014-robots.js';
import type { MetadataSchema } from './schema.js';
import { postgresTagChanges, sqliteTagChanges, unknownTagChanges, type TagChanges } from './tag-changes.js';
import type { MetadataEngine } from './engine.js';

export type { MetadataEngine };
export type MetadataDb = Kysely<MetadataSchema>;
/** Either the database or an open transaction on it: query functions accept both. */
export type MetadataExecutor = Kysely<MetadataSchema> | Transaction<MetadataSchema>;

/** Which engine a database or transaction runs on, for the few statements the engines spell differently. */
export function engineOf(db: MetadataExecutor): MetadataEngine {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/** A row named something that is no longer there (a foreign key), on either engine. */
export function isForeignKeyViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503';
}

/** A row whose key is taken already (a duplicate name). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}

const compiledSqlCache = new WeakMap<object, Map<string, string>>();

/**
 * For a hot query whose SQL text never changes: it is built and compiled once per executor and name,
 * and later calls run that SQL with their own parameters (in the order the SQL uses them).
 */
export function reuseCompiledSql<R>(
  db: MetadataExecutor,
  name: string,
  build: () => CompiledQuery<R>,
  parameters: readonly unknown[],
): CompiledQuery<R> {
  let byName = compiledSqlCache.get(db);
  if (!byName) compiledSqlCache.set(db, (byName = new Map()));
  const known = byName.get(name);
  if (known !== undefined) return CompiledQuery.raw(known, [...parameters]) as CompiledQuery<R>;
  const compiled = build();
  byName.set(name, compiled.sql);
  return compiled;
}

/**
 * The database could not be reached or did not answer in time (connection refused or lost, a
 * timeout, the server shutting down, the writer lock held past busy_timeout): nothing was changed
 * by the statement that failed, and the same request may succeed later.
 */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

/** Causes of a failure, outermost first (an error's `cause`, and so on). */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current !== undefined && current !== null && chain.length < 8; current = (current as { cause?: unknown }).cause) chain.push(current);
  return chain;
}

/** SQLSTATE classes and codes of PostgreSQL that say the server cannot serve now, not that the statement is wrong. */
const postgresUnavailable = /^(08...|57P0[1-3]|53300|57014|40P01)$/;

/**
 * Why a database statement failed, when the cause is the database's state rather than the request:
 * `full` (SQLITE_FULL, PostgreSQL's disk_full), or `unavailable` (see DatabaseUnavailableError;
 * SQLITE_BUSY). Null for anything else.
 */
export function databaseFailureOf(error: unknown): { kind: 'full' | 'unavailable'; code: string } | null {
  for (const cause of causes(error)) {
    if (cause instanceof DatabaseUnavailableError) return { kind: 'unavailable', code: (cause.cause as { code?: string } | undefined)?.code ?? 'unreachable' };
    const code = (cause as { code?: unknown } | null)?.code;
    if (typeof code !== 'string') continue;
    if (code === 'SQLITE_FULL') return { kind: 'full', code };
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return { kind: 'unavailable', code };
    if (cause instanceof pg.DatabaseError) {
      if (code === '53100') return { kind: 'full', code: 'disk_full (53100)' };
      if (postgresUnavailable.test(code)) return { kind: 'unavailable', code };
    }
  }
  return null;
}

/** What a lost or unreachable PostgreSQL server looks like from the client side (no SQLSTATE: it never answered). */
function isConnectionFailure(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return false;
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/.test(code)) return true;
  return typeof message === 'string' && /Connection terminated|timeout|not queryable|connection error|Connection ended/i.test(message);
}

function unavailable(error: unknown): unknown {
  return isConnectionFailure(error) ? new DatabaseUnavailableError((error as Error).message, { cause: error }) : error;
}

export interface MetadataDatabase {
  readonly engine: MetadataEngine;
  readonly db: MetadataDb;
  /** When tags may have changed, for answers kept in memory. */
  readonly tagChanges: TagChanges;
  close(): Promise<void>;
}

export interface ParsedDatabaseUrl {
  engine: MetadataEngine;
  /** For SQLite, the file path; for PostgreSQL, the connection string. */
  target: string;
}

/** `sqlite:<path>` (relative to the working directory, or `sqlite:///abs/path`), or `postgres://…`. */
export function parseDatabaseUrl(url: string): ParsedDatabaseUrl {
  if (url.startsWith('sqlite:')) {
    let file = url.slice('sqlite:'.length);
    if (file.startsWith('//')) file = file.slice(2);
    if (file === '') throw new Error('a sqlite: database URL needs a file path, e.g. sqlite:./storage/registry.db');
    return { engine: 'sqlite', target: file };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { engine: 'postgres', target: url };
  throw new Error(`unsupported database URL ${JSON.stringify(url)}: use sqlite:<path> or postgres://…`);
}

const migrations: Record<string, (engine: MetadataEngine) => Migration> = {
  '0001-initial': (engine) => ({ up: (db) => initial.up(db, engine) }),
  '0002-mirror': (engine) => ({ up: (db) => mirror.up(db, engine) }),
  '0003-mirror-history-referrers': (engine) => ({ up: (db) => mirrorHistoryReferrers.up(db, engine) }),
  '0004-mirror-history-action': () => ({ up: (db) => mirrorHistoryAction.up(db) }),
  '0005-gc': (engine) => ({ up: (db) => garbageCollection.up(db, engine) }),
  '0006-mirror-eviction': () => ({ up: (db) => mirrorEviction.up(db) }),
  '0007-audit': (engine) => ({ up: (db) => audit.up(db, engine) }),
  '0008-notifications': () => ({ up: (db) => notifications.up(db) }),
  '0009-tag-changes': (engine) => ({ up: (db) => tagChangeSignals.up(db, engine) }),
  '0010-repository-pushes': (engine) => ({ up: (db) => repositoryPushes.up(db, engine) }),
  '0011-upload-owners-readiness': () => ({ up: (db) => uploadOwnersReadiness.up(db) }),
  '0012-accounts': () => ({ up: (db) => accounts.up(db) }),
  '0013-projects': () => ({ up: (db) => projects.up(db) }),
  '0014-robots': () => ({ up: (db) => robots.up(db) }),
};

/** The migration the code expects the database to be at. */
const latestMigration = Object.keys(migrations).at(-1)!;

/**
 * Why the database cannot serve this code, or null: it must answer, and hold the schema of the
 * latest migration (a database dropped and recreated empty answers, but has no tables).
 */
export async function schemaProblem(db: MetadataDb): Promise<string | null> {
  let latest: string | undefined;
  try {
    const row = await sql<{ name: string }>`select name from kysely_migration order by name desc limit 1`.execute(db);
    latest = row.rows[0]?.name;
  } catch (error) {
    if (databaseFailureOf(error)) throw error;
    return `no schema: ${(error as Error).message}`;
  }
  if (latest === latestMigration) return null;
  return latest === undefined ? 'no schema: no migration was ever applied' : `schema at migration ${latest}, this registry needs ${latestMigration}`;
}

/** A write that needs room in the database (a readiness check after it ran out of space). */
export async function writeReadinessProbe(db: MetadataDb, instance: string, now: number): Promise<void> {
  await db
    .insertInto('readiness_probes')
    .values({ instance, written_at: now })
    .onConflict((conflict) => conflict.column('instance').doUpdateSet({ written_at: now }))
    .execute();
}

class StaticMigrationProvider implements MigrationProvider {
  constructor(private readonly engine: MetadataEngine) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return Object.fromEntries(Object.entries(migrations).map(([name, make]) => [name, make(this.engine)]));
  }
}

async function migrateToLatest(db: Kysely<unknown>, engine: MetadataEngine): Promise<void> {
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider(engine) });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((result) => result.status === 'Error');
  if (error || failed) {
    const reason = error instanceof Error ? error.message : String(error ?? '');
    throw new Error(failed ? `database migration ${failed.migrationName} failed: ${reason}` : reason);
  }
}

/** How many distinct prepared statements are kept per connection. */
const statementCacheSize = 500;

/**
 * The connection as Kysely sees it, with prepared statements reused: Kysely prepares every query it
 * runs, and preparing costs more than running the small queries of the hot paths.
 */
function withStatementCache(connection: SQLite.Database): SQLite.Database {
  const statements = new Map<string, SQLite.Statement>();
  const prepare = (source: string): SQLite.Statement => {
    let statement = statements.get(source);
    if (statement) {
      statements.delete(source);
    } else {
      statement = connection.prepare(source);
      if (statements.size >= statementCacheSize) statements.delete(statements.keys().next().value as string);
    }
    statements.set(source, statement);
    return statement;
  };
  return withMethod(connection, 'prepare', prepare);
}

/** The object with one method replaced; its other methods still run on the object itself. */
function withMethod<T extends object>(target: T, name: PropertyKey, method: unknown): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      if (property === name) return method;
      const value = Reflect.get(object, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(object) : value;
    },
  });
}

function openSqlite(file: string): SQLite.Database {
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const connection = new SQLite(file);
  connection.pragma('journal_mode = WAL');
  // FULL: an acknowledged push survives a power loss, not only a crash of this process.
  connection.pragma('synchronous = FULL');
  connection.pragma('busy_timeout = 5000');
  connection.pragma('foreign_keys = ON');
  return connection;
}

const int8TypeId = 20;

/** How long to wait for PostgreSQL: a connection, and one statement (0: without end). */
export interface DatabaseTimeouts {
  connectMs: number;
  statementMs: number;
}

export const defaultDatabaseTimeouts: DatabaseTimeouts = { connectMs: 5000, statementMs: 60_000 };

/**
 * The pool as Kysely uses it, with a lost or unreachable server's errors (which carry no SQLSTATE)
 * turned into DatabaseUnavailableError, so that requests answer 503 and the cause is not guessed at.
 */
function reportingUnavailable(pool: pg.Pool): pg.Pool {
  // One stand-in per client, so that Kysely finds the connection it made for it last time.
  const standIns = new WeakMap<pg.PoolClient, pg.PoolClient>();
  const connect = async (): Promise<pg.PoolClient> => {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw unavailable(error);
    }
    const known = standIns.get(client);
    if (known) return known;
    const query = (...args: unknown[]) => (client.query as (...args: unknown[]) => Promise<unknown>)(...args).catch((error: unknown) => Promise.reject(unavailable(error)));
    const standIn = withMethod(client, 'query', query);
    standIns.set(client, standIn);
    return standIn;
  };
  return withMethod(pool, 'connect', connect);
}

/**
 * A PostgreSQL pool whose bigint columns (sizes, times, ids) arrive as numbers, as with SQLite. A
 * statement ends after the timeout on the server (statement_timeout) and, should the server not
 * answer at all (a partition, a frozen connection), on this side a second later; a connection that
 * cannot be made in connectMs fails, so no request waits without end.
 */
function openPostgres(connectionString: string, timeouts: DatabaseTimeouts): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: 10,
    connectionTimeoutMillis: timeouts.connectMs,
    keepAlive: true,
    ...(timeouts.statementMs > 0 ? { statement_timeout: timeouts.statementMs, query_timeout: timeouts.statementMs + 1000 } : {}),
    types: {
      getTypeParser: ((typeId: number, format?: 'text' | 'binary') =>
        typeId === int8TypeId && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(typeId, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection that the server ends (restart, failover, terminated backend) is dropped from the
  // pool; without a listener its error would crash the process. Queries in flight still see their error.
  pool.on('error', () => {});
  return pool;
}

/**
 * SQLite transactions begin IMMEDIATE: the writer lock is taken (waiting up to busy_timeout) before
 * the first statement. A deferred transaction that reads first and writes later fails at once with
 * SQLITE_BUSY when another process (the gc command beside a server) committed in between.
 */
class ImmediateTransactionsDriver extends SqliteDriver {
  constructor(
    settings: SqliteDialectConfig,
    private readonly database: SQLite.Database,
  ) {
    super(settings);
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  /**
   * SQLite ends a transaction itself on some failures (SQLITE_FULL, an I/O error): a ROLLBACK then
   * fails with "no transaction is active", and that error would take the place of the real one.
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (!this.database.inTransaction) return;
    await super.rollbackTransaction(connection);
  }
}

class SqliteWriterDialect extends SqliteDialect {
  constructor(
    private readonly settings: SqliteDialectConfig,
    private readonly database: SQLite.Database,
  ) {
    super(settings);
  }

  override createDriver(): Driver {
    return new ImmediateTransactionsDriver(this.settings, this.database);
  }
}

function dialectFor(engine: MetadataEngine, target: string, timeouts: DatabaseTimeouts): Dialect {
  if (engine === 'postgres') return new PostgresDialect({ pool: reportingUnavailable(openPostgres(target, timeouts)) });
  const database = withStatementCache(openSqlite(target));
  return new SqliteWriterDialect({ database }, database);
}

/**
 * Opens the metadata database named by the URL and brings its schema to the latest migration.
 * Several replicas starting together are safe: Kysely's migrator takes a lock while it migrates.
 */
export interface MetadataOptions {
  /** Called with each query's duration in seconds (metrics). */
  onQuery?: (seconds: number, engine: MetadataEngine) => void;
  /** PostgreSQL's connect and statement timeouts (database.connecttimeout, database.statementtimeout). */
  timeouts?: DatabaseTimeouts;
}

export async function openMetadataDatabase(url: string, options: MetadataOptions = {}): Promise<MetadataDatabase> {
  const { engine, target } = parseDatabaseUrl(url);
  const onQuery = options.onQuery;
  const db = new Kysely<MetadataSchema>({
    dialect: dialectFor(engine, target, options.timeouts ?? defaultDatabaseTimeouts),
    ...(onQuery ? { log: (event) => onQuery(event.queryDurationMillis / 1000, engine) } : {}),
  });
  try {
    await migrateToLatest(db as unknown as Kysely<unknown>, engine);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  const tagChanges = engine === 'postgres' ? postgresTagChanges(target) : target === ':memory:' ? unknownTagChanges : sqliteTagChanges(target);
  return {
    engine,
    db,
    tagChanges,
    close: async () => {
      await tagChanges.close();
      await db.destroy();
    },
  };
}
