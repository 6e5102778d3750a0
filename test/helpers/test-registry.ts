import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import supertest from 'supertest';
import { createApp, type RegistryApp } from '../../src/app.js';
import { openMetadataDatabase, type MetadataDatabase } from '../../src/metadata/database.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';

export interface TestRegistry {
  root: string;
  storage: FilesystemDriver;
  metadata: MetadataDatabase;
  registry: RegistryApp;
  /** supertest against the app's callback: no port of ours is opened. */
  request: supertest.Agent;
  /** Every file under the storage root except the database files, relative, sorted. */
  storedFiles(): Promise<string[]>;
  rowCounts(): Promise<Record<string, number>>;
  /** A real HTTP server on a random port, for requests supertest cannot make (aborts, raw paths). */
  listen(): Promise<{ server: Server; port: number }>;
  /** Builds a new app on the same storage root and database file, as a restart would. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface TestRegistryOptions {
  deleteEnabled?: boolean;
  /** A metadata database URL (e.g. a PostgreSQL test database); a SQLite file in the temp dir otherwise. */
  databaseUrl?: string;
}

const silentLogger = pino({ level: 'silent' });

export async function createTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const root = await mkdtemp(path.join(tmpdir(), 'registry-test-'));
  const servers: Server[] = [];
  const open = async () => {
    const storage = await FilesystemDriver.open(path.join(root, 'storage'));
    const metadata = await openMetadataDatabase(options.databaseUrl ?? `sqlite:${path.join(root, 'registry.db')}`);
    const registry = createApp({
      storage,
      metadata: metadata.db,
      logger: silentLogger,
      options: { deleteEnabled: options.deleteEnabled ?? true },
    });
    return { storage, metadata, registry, request: supertest.agent(registry.app.callback()) };
  };
  let current = await open();
  const closeCurrent = async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await current.metadata.close();
  };
  const test: TestRegistry = {
    root,
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
    storedFiles: () => listFiles(path.join(root, 'storage')),
    async rowCounts() {
      const db = current.metadata.db;
      const tables = ['repositories', 'blobs', 'repository_blobs', 'uploads'] as const;
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
    async listen() {
      const server = createServer(current.registry.app.callback());
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { server, port: (server.address() as AddressInfo).port };
    },
    async restart() {
      await closeCurrent();
      current = await open();
    },
    async close() {
      await closeCurrent();
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
