import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { metadataContract } from './metadata-contract.js';
import { auditContract } from './audit-contract.js';

metadataContract('sqlite', async () => {
  const directory = await mkdtemp(path.join(tmpdir(), 'metadata-sqlite-'));
  return { url: `sqlite:${path.join(directory, 'registry.db')}`, cleanup: () => rm(directory, { recursive: true, force: true }) };
});

auditContract('sqlite', async () => {
  const directory = await mkdtemp(path.join(tmpdir(), 'audit-sqlite-'));
  return { url: `sqlite:${path.join(directory, 'registry.db')}`, cleanup: () => rm(directory, { recursive: true, force: true }) };
});
