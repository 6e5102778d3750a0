import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import * as initial from '../../src/metadata/migrations/0001-initial.js';
import * as mirror from '../../src/metadata/migrations/0002-mirror.js';
import * as mirrorHistoryReferrers from '../../src/metadata/migrations/0003-mirror-history-referrers.js';
import * as mirrorHistoryAction from '../../src/metadata/migrations/0004-mirror-history-action.js';

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
