import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { metadataContract } from './metadata-contract.js';

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
