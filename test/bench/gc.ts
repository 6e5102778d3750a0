/**
 * Garbage collection at scale: 10,000 manifests naming 90,000 blobs, and 10,000 blobs nothing names
 * (a tenth of 100,000), bytes on the filesystem, metadata in SQLite and in PostgreSQL where one
 * answers: the mark and sweep times of one run. Then a running server under a pull load and a push
 * load, each measured alone and again while `registry gc` collects beside it: the ratio is what the
 * collection leaves of the throughput. Figures only: nothing here passes or fails on speed.
 */
import { resolveConfig } from '../../src/config/load.js';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { GarbageCollector, type GcReport } from '../../src/gc/collector.js';
import { noReceivers } from '../../src/metadata/audit.js';
import { openMetadataDatabase, type MetadataDb } from '../../src/metadata/database.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { rawRequest } from '../helpers/raw-http.js';
import { projectRoot, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { benchSize } from './limits.js';
import { systemClock } from '../../src/clock.js';

/** audit.timemachine as the schema sets it by default, as a server would run. */
const defaultTimeMachineMs = resolveConfig({}).audit.timemachine;
const manifestCount = benchSize('BENCH_GC_MANIFESTS', 10_000, 300);
const blobsPerManifest = 9;
const garbageCount = manifestCount;
const loadSeconds = benchSize('BENCH_LOAD_SECONDS', 5, 1);
const hour = 3_600_000;

const hex = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

interface Dataset {
  referenced: string[];
  garbage: string[];
}

async function writeBytes(root: string, digests: string[]): Promise<void> {
  const size = 64;
  for (let start = 0; start < digests.length; start += 200) {
    await Promise.all(
      digests.slice(start, start + 200).map(async (digest) => {
        const value = digest.slice('sha256:'.length);
        const directory = path.join(root, 'blobs', 'sha256', value.slice(0, 2), value);
        await mkdir(directory, { recursive: true });
        await writeFile(path.join(directory, 'data'), Buffer.alloc(size));
      }),
    );
  }
}

function makeDataset(): Dataset {
  const digest = () => `sha256:${hex(randomBytes(16))}`;
  return {
    referenced: Array.from({ length: manifestCount * blobsPerManifest }, digest),
    garbage: Array.from({ length: garbageCount }, digest),
  };
}

/** Rows for the dataset, all pushed two hours ago: manifests tagged, each naming its nine blobs. */
async function insertRows(db: MetadataDb, data: Dataset): Promise<void> {
  const old = Date.now() - 2 * hour;
  const allBlobs = [...data.referenced, ...data.garbage];
  for (let start = 0; start < allBlobs.length; start += 500) {
    await db
      .insertInto('blobs')
      .values(allBlobs.slice(start, start + 500).map((digest) => ({ digest, size: 64, created_at: old, used_at: old })))
      .execute();
  }
  const repositories = 100;
  for (let index = 0; index < repositories; index++) await db.insertInto('repositories').values({ name: `bench/repo-${index}`, created_at: old }).execute();
  const repositoryIds = (await db.selectFrom('repositories').select('id').orderBy('id').execute()).map((row) => Number(row.id));
  for (let start = 0; start < manifestCount; start += 250) {
    await db.transaction().execute(async (transaction) => {
      for (let index = start; index < Math.min(manifestCount, start + 250); index++) {
        const repositoryId = repositoryIds[index % repositories]!;
        const payload = Buffer.from(`{"bench":${index}}`);
        const { id } = await transaction
          .insertInto('manifests')
          .values({ repository_id: repositoryId, digest: `sha256:${hex(payload)}`, media_type: 'application/vnd.oci.image.manifest.v1+json', artifact_type: null, subject_digest: null, size: payload.length, payload, created_at: old, used_at: old })
          .returning('id')
          .executeTakeFirstOrThrow();
        const blobs = data.referenced.slice(index * blobsPerManifest, (index + 1) * blobsPerManifest);
        await transaction.insertInto('manifest_blobs').values(blobs.map((digest) => ({ manifest_id: Number(id), digest }))).execute();
        await transaction.insertInto('repository_blobs').values(blobs.map((digest) => ({ repository_id: repositoryId, digest, created_at: old }))).execute();
        await transaction.insertInto('tags').values({ repository_id: repositoryId, name: `t${index}`, manifest_id: Number(id), created_at: old, updated_at: old }).execute();
      }
    });
  }
}

async function collectOnce(root: string, databaseUrl: string, data: Dataset): Promise<GcReport> {
  const database = await openMetadataDatabase(databaseUrl);
  try {
    await insertRows(database.db, data);
    const storage = await FilesystemDriver.open(root);
    return await new GarbageCollector({ storage, metadata: database.db, clock: systemClock }, pino({ level: 'silent' }), null, defaultTimeMachineMs, noReceivers).run({ dryRun: false, untagged: false, graceMs: hour });
  } finally {
    await database.close();
  }
}

function printRun(label: string, report: GcReport): void {
  const sweepMs = report.durationMs - report.markMs;
  process.stdout.write(
    `  ${label.padEnd(10)} mark ${String(report.markMs).padStart(6)} ms   sweep ${String(sweepMs).padStart(6)} ms   total ${(report.durationMs / 1000).toFixed(2)} s   ` +
      `${report.blobs} blobs freed (${Math.round(report.blobs / (sweepMs / 1000))}/s)\n`,
  );
}

/** One `registry gc --grace 0s` on the same stores; resolves when it exits. */
function collectOnceBeside(root: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const child = spawn(process.execPath, [path.join(projectRoot, 'dist/src/main.js'), 'gc', '--grace', '0s'], {
      cwd: projectRoot,
      env: { PATH: process.env.PATH ?? '', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root },
      stdio: 'ignore',
    });
    child.once('close', () => resolve());
  });
}

/** A pull load and a push load at once, until `done` settles (or for `seconds`): requests per second of each. */
async function mixedLoad(port: number, pullPath: string, until: Promise<unknown> | number): Promise<{ pulls: number; pushes: number; seconds: number; failures: number }> {
  const started = Date.now();
  let finished = false;
  if (typeof until === 'number') setTimeout(() => (finished = true), until * 1000);
  else void until.then(() => (finished = true));
  const headers = { Accept: 'application/vnd.oci.image.manifest.v1+json' };
  let pulls = 0;
  let pushes = 0;
  let failures = 0;
  const base = `http://127.0.0.1:${port}`;
  // fetch keeps its connections alive, as registry clients do.
  const pullers = Array.from({ length: 16 }, async () => {
    while (!finished) {
      const response = await fetch(`${base}${pullPath}`, { headers });
      await response.arrayBuffer();
      if (response.status === 200) pulls++;
      else failures++;
    }
  });
  const pushers = Array.from({ length: 4 }, async () => {
    while (!finished) {
      const bytes = randomBytes(1024);
      const response = await fetch(`${base}/v2/bench/push/blobs/uploads/?digest=sha256:${hex(bytes)}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: bytes });
      await response.arrayBuffer();
      if (response.status === 201) pushes++;
      else failures++;
    }
  });
  await Promise.all([...pullers, ...pushers]);
  const seconds = (Date.now() - started) / 1000;
  return { pulls: pulls / seconds, pushes: pushes / seconds, seconds, failures };
}

await withTemporaryDirectory('registry-bench-gc-', async (directory) => {
  process.stdout.write(`Garbage collection: ${manifestCount} tagged manifests naming ${manifestCount * blobsPerManifest} blobs, ${garbageCount} blobs nothing names (bytes on the filesystem)\n`);
  const data = makeDataset();
  const root = path.join(directory, 'storage');
  await writeBytes(root, [...data.referenced, ...data.garbage]);

  const sqlite = await collectOnce(root, `sqlite:${path.join(directory, 'bench.db')}`, data);
  printRun('SQLite', sqlite);
  const skip = await postgresSkipReason();
  if (skip) {
    process.stdout.write(`  PostgreSQL: ${skip}\n`);
  } else {
    await writeBytes(root, data.garbage);
    const database = await createTestDatabase();
    try {
      printRun('PostgreSQL', await collectOnce(root, database.url, data));
    } finally {
      await database.drop();
    }
  }

  // A running server on the SQLite stores, with garbage to collect again.
  await writeBytes(root, data.garbage);
  const server = await startServerProcess({ root, keepLogs: false, env: { REGISTRY_DATABASE_URL: `sqlite:${path.join(directory, 'bench.db')}`, REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'false' } });
  try {
    const manifest = (await rawRequest(server.port, 'GET', '/v2/bench/repo-0/manifests/t0', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).headers['docker-content-digest'];
    const pullPath = `/v2/bench/repo-0/manifests/${String(manifest)}`;
    await mixedLoad(server.port, pullPath, 1); // warm-up: prepared statements, JIT, page cache
    const before = await mixedLoad(server.port, pullPath, loadSeconds);
    const during = await mixedLoad(server.port, pullPath, collectOnceBeside(root));
    const afterwards = await mixedLoad(server.port, pullPath, loadSeconds);
    const alonePulls = (before.pulls + afterwards.pulls) / 2;
    const alonePushes = (before.pushes + afterwards.pushes) / 2;
    process.stdout.write(
      `  a running server (SQLite) under 16 pulling and 4 pushing clients, alone (before and after) / while registry gc collects beside it (${during.seconds.toFixed(1)} s):\n` +
        `    manifest GET by digest   ${Math.round(alonePulls)} / ${Math.round(during.pulls)} req/s   ratio ${(during.pulls / alonePulls).toFixed(2)}\n` +
        `    blob push (1 KiB)        ${Math.round(alonePushes)} / ${Math.round(during.pushes)} per s   ratio ${(during.pushes / alonePushes).toFixed(2)}   failures ${before.failures + during.failures + afterwards.failures}\n`,
    );
  } finally {
    await server.stop();
  }
});
