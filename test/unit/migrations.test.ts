import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import * as initial from '../../src/metadata/migrations/0001-initial.js';
import * as mirror from '../../src/metadata/migrations/0002-mirror.js';
import * as mirrorHistoryReferrers from '../../src/metadata/migrations/0003-mirror-history-referrers.js';
import * as mirrorHistoryAction from '../../src/metadata/migrations/0004-mirror-history-action.js';
import * as garbageCollection from '../../src/metadata/migrations/0005-gc.js';
import * as mirrorEviction from '../../src/metadata/migrations/0006-mirror-eviction.js';
import * as audit from '../../src/metadata/migrations/0007-audit.js';
import { AuditService } from '../../src/audit/audit-service.js';
import type { MetadataDb } from '../../src/metadata/database.js';
import { systemClock } from '../../src/clock.js';

describe('migration 0004: the action of mirrored tag changes', () => {
  it('gives rows written before it the action their digests imply', async () => {
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new SQLite(':memory:') }) });
    try {
      await initial.up(db, 'sqlite');
      await mirror.up(db, 'sqlite');
      await mirrorHistoryReferrers.up(db, 'sqlite');
      for (const [from, to] of [[null, 'sha256:a'], ['sha256:a', 'sha256:b'], ['sha256:b', null]]) {
        await sql`insert into mirror_tag_history (upstream, repository, tag, from_digest, to_digest, at) values ('docker.io', 'library/alpine', '3.20', ${from}, ${to}, 1)`.execute(db);
      }
      await mirrorHistoryAction.up(db);
      const rows = await sql<{ action: string }>`select action from mirror_tag_history order by id`.execute(db);
      assert.deepEqual(rows.rows.map((row) => row.action), ['seen', 'moved', 'gone']);
    } finally {
      await db.destroy();
    }
  });
});

describe('migration 0007: the audit log starts from what exists', () => {
  it('moves the mirror\'s tag history into it and gives each local tag a created event, in time order, as one chain', async () => {
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new SQLite(':memory:') }) });
    try {
      await initial.up(db, 'sqlite');
      await mirror.up(db, 'sqlite');
      await mirrorHistoryReferrers.up(db, 'sqlite');
      await mirrorHistoryAction.up(db);
      await garbageCollection.up(db, 'sqlite');
      await mirrorEviction.up(db);
      await sql`insert into mirror_tag_history (upstream, repository, tag, from_digest, to_digest, at, action) values ('docker.io', 'library/alpine', '3.20', null, 'sha256:a', 1000, 'seen')`.execute(db);
      await sql`insert into mirror_tag_history (upstream, repository, tag, from_digest, to_digest, at, action) values ('docker.io', 'library/alpine', '3.20', 'sha256:a', 'sha256:b', 3000, 'moved')`.execute(db);
      await sql`insert into repositories (name, created_at) values ('team/api', 1)`.execute(db);
      await sql`insert into manifests (repository_id, digest, media_type, size, payload, created_at, used_at) values (1, 'sha256:c', 'application/vnd.oci.image.manifest.v1+json', 2, x'7b7d', 1, 1)`.execute(db);
      await sql`insert into tags (repository_id, name, manifest_id, created_at, updated_at) values (1, 'prod', 1, 1500, 2000)`.execute(db);
      await audit.up(db, 'sqlite');
      const rows = await sql<{ id: number; upstream: string | null; repository: string; action: string; from_digest: string | null; to_digest: string | null; actor: string }>`
        select id, upstream, repository, action, from_digest, to_digest, actor from audit_events order by id`.execute(db);
      assert.deepEqual(rows.rows.map((row) => [row.id, row.upstream, row.repository, row.action, row.from_digest, row.to_digest, row.actor]), [
        [1, 'docker.io', 'library/alpine', 'seen', null, 'sha256:a', 'system$mirror'],
        [2, null, 'team/api', 'created', null, 'sha256:c', 'system$upgrade'],
        [3, 'docker.io', 'library/alpine', 'moved', 'sha256:a', 'sha256:b', 'system$mirror'],
      ]);
      const verified = await new AuditService(db as unknown as MetadataDb, null, systemClock).verify();
      assert.ok(verified.ok, JSON.stringify(verified.problem));
      assert.deepEqual([verified.events, verified.head.id], [3, 3]);
      await assert.rejects(sql`select 1 from mirror_tag_history`.execute(db), /no such table/);
    } finally {
      await db.destroy();
    }
  });
});
