import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import supertest from 'supertest';
import { createApp, type RegistryApp } from '../../src/app.js';
import { registrySettings } from '../../src/composition.js';
import { openAuth } from '../../src/auth/setup.js';
import type { AuditSettings } from '../../src/audit/settings.js';
import type { RegistryMetrics } from '../../src/metrics/registry-metrics.js';
import { resolveConfig } from '../../src/config/load.js';
import { openMetadataDatabase, type DatabaseTimeouts, type MetadataDatabase } from '../../src/metadata/database.js';
import type { TagChanges } from '../../src/metadata/tag-changes.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { S3Driver, type S3DriverOptions } from '../../src/storage/s3.js';
import { connectS3Server, startS3Server, type S3TestServer } from './s3-server.js';
import { systemClock, type Clock } from '../../src/clock.js';
import type { RegistryStores } from '../../src/registry/context.js';

export type TestStorageKind = 'filesystem' | 's3';

/**
 * The blob storage API tests run on: the filesystem unless REGISTRY_TEST_STORAGE=s3, which runs the
 * same tests against the S3 driver on an s3rver process (npm test runs the API suite both ways).
 */
export const testStorageKind: TestStorageKind = process.env.REGISTRY_TEST_STORAGE === 's3' ? 's3' : 'filesystem';

export interface TestRegistry {
  root: string;
  /** The clock the registry runs on. */
  clock: Clock;
  /** Its stores and clock, as the registry's services hold them. */
  readonly stores: RegistryStores;
  storageKind: TestStorageKind;
  storage: StorageDriver;
  metadata: MetadataDatabase;
  registry: RegistryApp;
  /** supertest against the app's callback: no port of ours is opened. */
  request: supertest.Agent;
  /** The S3 server behind the storage, when it is S3. */
  s3: S3TestServer | null;
  /** Every stored object (file under the storage root, or key in the bucket) except the database files, relative, sorted. */
  storedFiles(): Promise<string[]>;
  rowCounts(): Promise<Record<string, number>>;
  /** A real HTTP server on a random port, for requests supertest cannot make (aborts, raw paths). */
  listen(port?: number): Promise<{ server: Server; port: number }>;
  /** Builds a new app on the same storage root and database file, as a restart would. */
  restart(): Promise<void>;
  /** A second app on the same storage and database, with its own connections and locks: another replica (PostgreSQL). */
  replica(): Promise<{ request: supertest.Agent; close(): Promise<void> }>;
  close(): Promise<void>;
}

export interface TestRegistryOptions {
  /** The registry's time: the system's unless a test moves it (helpers/clock.ts). */
  clock?: Clock;
  /** Where the registry's directory (storage, SQLite file) is made: the system's temporary directory by default. */
  parentDirectory?: string;
  deleteEnabled?: boolean;
  /** Serve the web UI (ui.enabled; the assets npm run build made in dist/ui). */
  ui?: boolean;
  /** A metadata database URL (e.g. a PostgreSQL test database); a SQLite file in the temp dir otherwise. */
  databaseUrl?: string;
  /** PostgreSQL's connect and statement timeouts (database.connecttimeout, database.statementtimeout). */
  databaseTimeouts?: DatabaseTimeouts;
  storage?: TestStorageKind;
  /** Options for the S3 driver (redirects, part size…), when the storage is S3. */
  s3?: Partial<S3DriverOptions>;
  /** The `auth` section of a configuration file (a generated signing key goes under the temp dir). */
  auth?: Record<string, unknown>;
  logger?: Logger;
  /** In place of the database's own signal of tag changes (one that never moves stands for a late notification). */
  tagChanges?: TagChanges;
  trustProxy?: boolean;
  /** The `mirror` section of a configuration file (upstreams to mirror). */
  mirror?: Record<string, unknown>;
  /** Settings of garbage collection runs started over HTTP. */
  gc?: { graceMs: number; untagged: boolean };
  /** What the audit log records beyond tag changes (defaults otherwise). */
  audit?: Partial<AuditSettings>;
  /** The `tags` section of a configuration file (immutable tag rules). */
  tags?: Record<string, unknown>;
  /** The `retention` section of a configuration file (policies). */
  retention?: Record<string, unknown>;
  /** Prometheus metrics the app records into. */
  metrics?: RegistryMetrics;
  /** The `notifications` section of a configuration file (webhook endpoints): their delivery runs while the registry is open. */
  notifications?: Record<string, unknown>;
  /** The `uploads` section of a configuration file (open upload sessions allowed). */
  uploads?: Record<string, unknown>;
  /** Keys of the `http` section (bodytimeout, bodyminrate…). */
  http?: Record<string, unknown>;
}

const s3Prefix = 'registry';
/** The endpoint of the S3 server a whole run shares (npm run test:api-s3), if any. */
const sharedS3Endpoint = process.env.REGISTRY_TEST_S3_ENDPOINT;

const silentLogger = pino({ level: 'silent' });

export async function createTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const root = await mkdtemp(path.join(options.parentDirectory ?? tmpdir(), 'registry-test-'));
  const clock = options.clock ?? systemClock;
  const servers: Server[] = [];
  const storageKind = options.storage ?? testStorageKind;
  // The S3 rerun's one server (see with-s3-server.ts), with a bucket per registry; a test that asks
  // for S3 itself gets a server of its own, which it may stop and start.
  const sharedS3 = storageKind === 's3' && options.storage !== 's3' && sharedS3Endpoint ? connectS3Server(sharedS3Endpoint) : null;
  const s3 = storageKind === 's3' ? (sharedS3 ?? (await startS3Server())) : null;
  const s3Bucket = sharedS3 ? `registry-test-${randomBytes(6).toString('hex')}` : 'registry-test';
  await s3?.createBucket(s3Bucket);
  const openStorage = async (): Promise<StorageDriver> =>
    s3 ? s3.driver(s3Bucket, { rootDirectory: s3Prefix, ...options.s3 }) : FilesystemDriver.open(path.join(root, 'storage'));
  const open = async () => {
    const storage = await openStorage();
    const metrics = options.metrics;
    const metadata = await openMetadataDatabase(
      options.databaseUrl ?? `sqlite:${path.join(root, 'registry.db')}`,
      {
        ...(metrics ? { onQuery: (seconds: number, engine: 'sqlite' | 'postgres') => metrics.queryDuration.observe({ engine }, seconds) } : {}),
        ...(options.databaseTimeouts ? { timeouts: options.databaseTimeouts } : {}),
      },
    );
    const config = resolveConfig(
      {
        storage: { filesystem: { rootdirectory: root } },
        ...(options.auth ? { auth: options.auth } : {}),
        ...(options.mirror ? { mirror: options.mirror } : {}),
        ...(options.tags ? { tags: options.tags } : {}),
        ...(options.retention ? { retention: options.retention } : {}),
        ...(options.notifications ? { notifications: options.notifications } : {}),
        ...(options.uploads ? { uploads: options.uploads } : {}),
        ...(options.http ? { http: options.http } : {}),
        // Retention policies that keep by pulls need pulls recorded: as the test asks.
        ...(options.audit?.recordPulls !== undefined ? { audit: { pulls: options.audit.recordPulls } } : {}),
      },
      {},
      root,
    );
    const configured = registrySettings(config);
    const registry = createApp({
      clock,
      storage,
      metadata: metadata.db,
      tagChanges: options.tagChanges ?? metadata.tagChanges,
      logger: options.logger ?? silentLogger,
      settings: {
        ...configured,
        deleteEnabled: options.deleteEnabled ?? true,
        gc: options.gc ?? configured.gc,
        audit: { ...configured.audit, ...options.audit },
      },
      options: { trustProxy: options.trustProxy ?? false, ui: options.ui ?? false },
      auth: await openAuth(config, metadata.db, clock),
      ...(options.metrics ? { metrics: options.metrics } : {}),
    });
    await registry.services.notifications?.start();
    return { storage, metadata, registry, request: supertest.agent(registry.app.callback()) };
  };
  let current = await open();
  const closeCurrent = async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await current.registry.services.notifications?.stop();
    await current.metadata.close();
    if (current.storage instanceof S3Driver) current.storage.destroy();
  };
  const test: TestRegistry = {
    root,
    clock,
    get stores() {
      return { storage: current.storage, metadata: current.metadata.db, clock };
    },
    storageKind,
    s3,
    get storage() {
      return current.storage;
    },
    get metadata() {
      return current.metadata;
    },
    get registry() {
      return current.registry;
    },
    get request() {
      return current.request;
    },
    storedFiles: async () => {
      if (!s3) return listFiles(path.join(root, 'storage'));
      const keys = await s3.keys(s3Bucket);
      return keys.map((key) => (key.startsWith(`${s3Prefix}/`) ? key.slice(s3Prefix.length + 1) : key)).sort();
    },
    async rowCounts() {
      const db = current.metadata.db;
      const tables = ['repositories', 'blobs', 'repository_blobs', 'uploads', 'mirror_manifests', 'mirror_tags', 'mirror_blobs'] as const;
      const counts: Record<string, number> = {};
      for (const table of tables) {
        const row = await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('count'))
          .executeTakeFirstOrThrow();
        counts[table] = Number(row.count);
      }
      return counts;
    },
    async listen(port = 0) {
      const server = createServer(current.registry.app.callback());
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      return { server, port: (server.address() as AddressInfo).port };
    },
    async restart() {
      await closeCurrent();
      current = await open();
    },
    async replica() {
      const other = await open();
      return {
        request: other.request,
        async close() {
          await other.registry.services.notifications?.stop();
          await other.metadata.close();
          if (other.storage instanceof S3Driver) other.storage.destroy();
        },
      };
    },
    async close() {
      await closeCurrent();
      await s3?.dispose();
      await rm(root, { recursive: true, force: true });
    },
  };
  return test;
}

export async function listFiles(directory: string, prefix = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...(await listFiles(path.join(directory, entry.name), relative)));
    else files.push(relative);
  }
  return files.sort();
}
