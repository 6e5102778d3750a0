import { sql } from 'kysely';
import { engineOf, type MetadataDb, type MetadataExecutor } from './database.js';
import { ensureRepository } from './repositories.js';

export interface UploadRow {
  id: string;
  repositoryId: number;
  repositoryName: string;
  size: number;
  storageState: string | null;
  startedAt: number;
  updatedAt: number;
}

/** Open upload sessions allowed at once per repository and per owner (0: no limit). */
export interface UploadLimits {
  perRepository: number;
  perOwner: number;
}

/** A session touched this recently counts as open; older ones are abandoned (purged later) and do not count. */
export const activeUploadWindowMs = 3_600_000;

async function countActive(db: MetadataExecutor, column: 'repository_id' | 'owner', value: number | string, since: number): Promise<number> {
  const row = await db
    .selectFrom('uploads')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where(column, '=', value)
    .where('updated_at', '>=', since)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/**
 * Opens an upload session (and the repository's row, on first use), unless the repository or the
 * owner already has as many open sessions as the limits allow: then nothing is written and the
 * answer names which limit was reached.
 *
 * Race closed: two starts at once each counting one below the limit and both inserting. On SQLite
 * the transaction holds the writer lock from its start; on PostgreSQL it locks the repository's row
 * and takes a transaction lock on the owner's name, so starts in one repository, or by one owner,
 * count and insert one after the other.
 */
export async function insertUploadWithinLimits(
  db: MetadataDb,
  upload: { id: string; repository: string; owner: string },
  limits: UploadLimits,
  now: number,
): Promise<{ refused: 'repository' | 'owner' | null }> {
  // Thrown to roll back, with the repository's row when this start made it.
  class Refused extends Error {
    constructor(readonly limit: 'repository' | 'owner') {
      super(limit);
    }
  }
  try {
    await db.transaction().execute(async (transaction) => {
      const repository = await ensureRepository(transaction, upload.repository, now);
      if (engineOf(transaction) === 'postgres') {
        await transaction.selectFrom('repositories').select('id').where('id', '=', repository.id).forUpdate().execute();
        await sql`select pg_advisory_xact_lock(hashtext(${`uploads:${upload.owner}`}))`.execute(transaction);
      }
      const since = now - activeUploadWindowMs;
      if (limits.perRepository > 0 && (await countActive(transaction, 'repository_id', repository.id, since)) >= limits.perRepository) throw new Refused('repository');
      if (limits.perOwner > 0 && (await countActive(transaction, 'owner', upload.owner, since)) >= limits.perOwner) throw new Refused('owner');
      await transaction
        .insertInto('uploads')
        .values({ id: upload.id, repository_id: repository.id, size: 0, storage_state: null, started_at: now, updated_at: now, owner: upload.owner })
        .execute();
    });
  } catch (error) {
    if (error instanceof Refused) return { refused: error.limit };
    throw error;
  }
  return { refused: null };
}

function selectUploads(db: MetadataExecutor) {
  return db
    .selectFrom('uploads')
    .innerJoin('repositories', 'repositories.id', 'uploads.repository_id')
    .select([
      'uploads.id',
      'uploads.repository_id',
      'repositories.name',
      'uploads.size',
      'uploads.storage_state',
      'uploads.started_at',
      'uploads.updated_at',
    ]);
}

type SelectedUpload = NonNullable<Awaited<ReturnType<ReturnType<typeof selectUploads>['executeTakeFirst']>>>;

function toUploadRow(row: SelectedUpload): UploadRow {
  return {
    id: row.id,
    repositoryId: row.repository_id,
    repositoryName: row.name,
    size: row.size,
    storageState: row.storage_state,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
  };
}

/** The upload session if it exists and belongs to the named repository. */
export async function findUpload(db: MetadataExecutor, repositoryName: string, id: string): Promise<UploadRow | undefined> {
  const row = await selectUploads(db).where('uploads.id', '=', id).where('repositories.name', '=', repositoryName).executeTakeFirst();
  return row && toUploadRow(row);
}

export async function findUploadById(db: MetadataExecutor, id: string): Promise<UploadRow | undefined> {
  const row = await selectUploads(db).where('uploads.id', '=', id).executeTakeFirst();
  return row && toUploadRow(row);
}

/**
 * Advances the committed size of an upload, only if it is still at the size the caller started from,
 * so two writers can never both commit over the same bytes. Returns whether it advanced.
 */
export async function advanceUpload(
  db: MetadataExecutor,
  id: string,
  fromSize: number,
  toSize: number,
  storageState: string | null,
  now: number,
): Promise<boolean> {
  const result = await db
    .updateTable('uploads')
    .set({ size: toSize, storage_state: storageState, updated_at: now })
    .where('id', '=', id)
    .where('size', '=', fromSize)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deleteUpload(db: MetadataExecutor, id: string): Promise<boolean> {
  const result = await db.deleteFrom('uploads').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Ids of upload sessions last touched before the cutoff (milliseconds since the epoch). */
export async function findStaleUploads(db: MetadataExecutor, touchedBefore: number): Promise<string[]> {
  const rows = await db.selectFrom('uploads').select('id').where('updated_at', '<', touchedBefore).execute();
  return rows.map((row) => row.id);
}

/** Those of the given ids that are upload sessions. */
export async function findUploadIds(db: MetadataExecutor, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.selectFrom('uploads').select('id').where('id', 'in', ids).execute();
  return new Set(rows.map((row) => row.id));
}

/** Deletes the session only if it is still untouched since the cutoff. */
export async function deleteUploadIfStale(db: MetadataExecutor, id: string, touchedBefore: number): Promise<boolean> {
  const result = await db.deleteFrom('uploads').where('id', '=', id).where('updated_at', '<', touchedBefore).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Upload sessions started and not yet finished or cancelled, on every replica. */
export async function countUploads(db: MetadataExecutor): Promise<number> {
  const { count } = await db.selectFrom('uploads').select((eb) => eb.fn.countAll<number | string>().as('count')).executeTakeFirstOrThrow();
  return Number(count);
}
