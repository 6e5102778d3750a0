import type { MetadataExecutor } from './database.js';

export interface UploadRow {
  id: string;
  repositoryId: number;
  repositoryName: string;
  size: number;
  storageState: string | null;
  startedAt: number;
  updatedAt: number;
}

export async function insertUpload(
  db: MetadataExecutor,
  upload: { id: string; repositoryId: number },
  now = Date.now(),
): Promise<void> {
  await db
    .insertInto('uploads')
    .values({ id: upload.id, repository_id: upload.repositoryId, size: 0, storage_state: null, started_at: now, updated_at: now })
    .execute();
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
  now = Date.now(),
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
