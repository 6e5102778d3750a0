import type { Kysely } from 'kysely';
import type { MetadataEngine } from '../engine.js';
import { byteOrderedText, identityColumn } from './column-types.js';

// Migrations take an untyped Kysely: they describe the schema as it was then, not as it is now.
export async function up(db: Kysely<unknown>, engine: MetadataEngine): Promise<void> {
  const bytes = engine === 'postgres' ? 'bytea' : 'blob';

  await db.schema
    .createTable('repositories')
    .addColumn('id', identityColumn(engine), (column) => column.primaryKey())
    .addColumn('name', byteOrderedText(engine, 255), (column) => column.notNull().unique())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .execute();

  await db.schema
    .createTable('blobs')
    .addColumn('digest', 'varchar(200)', (column) => column.primaryKey())
    .addColumn('size', 'bigint', (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .execute();

  await db.schema
    .createTable('repository_blobs')
    .addColumn('repository_id', 'bigint', (column) => column.notNull().references('repositories.id').onDelete('cascade'))
    .addColumn('digest', 'varchar(200)', (column) => column.notNull().references('blobs.digest'))
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addPrimaryKeyConstraint('repository_blobs_pk', ['repository_id', 'digest'])
    .execute();
  await db.schema.createIndex('repository_blobs_digest').on('repository_blobs').column('digest').execute();

  await db.schema
    .createTable('uploads')
    .addColumn('id', 'varchar(64)', (column) => column.primaryKey())
    .addColumn('repository_id', 'bigint', (column) => column.notNull().references('repositories.id').onDelete('cascade'))
    .addColumn('size', 'bigint', (column) => column.notNull())
    .addColumn('storage_state', 'text')
    .addColumn('started_at', 'bigint', (column) => column.notNull())
    .addColumn('updated_at', 'bigint', (column) => column.notNull())
    .execute();

  await db.schema
    .createTable('manifests')
    .addColumn('id', identityColumn(engine), (column) => column.primaryKey())
    .addColumn('repository_id', 'bigint', (column) => column.notNull().references('repositories.id').onDelete('cascade'))
    .addColumn('digest', 'varchar(200)', (column) => column.notNull())
    .addColumn('media_type', 'varchar(255)', (column) => column.notNull())
    .addColumn('artifact_type', 'varchar(255)')
    .addColumn('subject_digest', 'varchar(200)')
    .addColumn('size', 'bigint', (column) => column.notNull())
    .addColumn('payload', bytes, (column) => column.notNull())
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addUniqueConstraint('manifests_repository_digest', ['repository_id', 'digest'])
    .execute();
  await db.schema
    .createIndex('manifests_subject')
    .on('manifests')
    .columns(['repository_id', 'subject_digest'])
    .execute();

  await db.schema
    .createTable('manifest_blobs')
    .addColumn('manifest_id', 'bigint', (column) => column.notNull().references('manifests.id').onDelete('cascade'))
    .addColumn('digest', 'varchar(200)', (column) => column.notNull().references('blobs.digest'))
    .addPrimaryKeyConstraint('manifest_blobs_pk', ['manifest_id', 'digest'])
    .execute();
  await db.schema.createIndex('manifest_blobs_digest').on('manifest_blobs').column('digest').execute();

  await db.schema
    .createTable('manifest_children')
    .addColumn('parent_id', 'bigint', (column) => column.notNull().references('manifests.id').onDelete('cascade'))
    .addColumn('child_id', 'bigint', (column) => column.notNull().references('manifests.id'))
    .addPrimaryKeyConstraint('manifest_children_pk', ['parent_id', 'child_id'])
    .execute();
  await db.schema.createIndex('manifest_children_child').on('manifest_children').column('child_id').execute();

  await db.schema
    .createTable('tags')
    .addColumn('id', identityColumn(engine), (column) => column.primaryKey())
    .addColumn('repository_id', 'bigint', (column) => column.notNull().references('repositories.id').onDelete('cascade'))
    .addColumn('name', byteOrderedText(engine, 128), (column) => column.notNull())
    .addColumn('manifest_id', 'bigint', (column) => column.notNull().references('manifests.id'))
    .addColumn('created_at', 'bigint', (column) => column.notNull())
    .addColumn('updated_at', 'bigint', (column) => column.notNull())
    .addUniqueConstraint('tags_repository_name', ['repository_id', 'name'])
    .execute();
  await db.schema.createIndex('tags_manifest').on('tags').column('manifest_id').execute();
}
