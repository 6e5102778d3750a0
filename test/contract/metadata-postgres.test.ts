import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { openMetadataDatabase } from '../../src/metadata/database.js';
import { ensureRepository, findRepository } from '../../src/metadata/repositories.js';
import { createTestDatabase, postgresAdminUrl, postgresSkipReason } from '../helpers/postgres.js';
import { metadataContract } from './metadata-contract.js';
import { auditContract } from './audit-contract.js';

const skip = await postgresSkipReason();
if (skip) console.log(`# ${skip}`);

metadataContract(
  'postgres',
  async () => {
    const database = await createTestDatabase();
    return { url: database.url, cleanup: database.drop };
  },
  skip ? { skip } : {},
);

auditContract(
  'postgres',
  async () => {
    const database = await createTestDatabase();
    return { url: database.url, cleanup: database.drop };
  },
  skip ? { skip } : {},
);

describe('the PostgreSQL engine when the server ends its connections', skip ? { skip } : {}, () => {
  it('drops the dead idle connections and carries on with new ones', async () => {
    const created = await createTestDatabase();
    const database = await openMetadataDatabase(created.url);
    try {
      await Promise.all(Array.from({ length: 4 }, () => ensureRepository(database.db, 'survives/restart', Date.now())));
      const admin = new pg.Client({ connectionString: postgresAdminUrl });
      await admin.connect();
      const { rowCount } = await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [new URL(created.url).pathname.slice(1)]);
      await admin.end();
      assert.ok((rowCount ?? 0) > 0, 'the pool had idle connections to end');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await findRepository(database.db, 'survives/restart'))?.name, 'survives/restart');
    } finally {
      await database.close();
      await created.drop();
    }
  });
});
