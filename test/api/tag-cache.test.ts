import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { openMetadataDatabase } from '../../src/metadata/database.js';
import { findManifest } from '../../src/metadata/manifests.js';
import { findRepository } from '../../src/metadata/repositories.js';
import type { TagChanges } from '../../src/metadata/tag-changes.js';
import { moveTag } from '../../src/metadata/tags.js';
import { allManifestTypes, imageManifest, pushManifest, type TestManifest } from '../helpers/images.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const postgresSkip = await postgresSkipReason();
if (postgresSkip) console.log(`# ${postgresSkip}`);

/** Polls until `check` holds, up to `withinMs`; answers how long it took. */
async function eventually(withinMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > withinMs) throw new Error(`not seen within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A database whose signal of changes never moves: what this process learns of its own writes must come from the writers. */
const silentSignal: TagChanges = { version: () => 0, close: async () => {} };

const variants = {
  sqlite: 'SQLite',
  postgres: 'PostgreSQL',
  late: "SQLite, the database's signal of changes never arriving (as a late notification)",
} as const;

for (const engine of ['sqlite', 'postgres', 'late'] as const) {
  describe(`answers by tag from memory follow every change of the tag (${variants[engine]})`, { skip: engine === 'postgres' ? postgresSkip : undefined }, () => {
    let registry: TestRegistry;
    let databaseUrl: string;
    let drop: (() => Promise<void>) | undefined;

    before(async () => {
      if (engine === 'postgres') {
        const database = await createTestDatabase();
        drop = database.drop;
        databaseUrl = database.url;
        registry = await createTestRegistry({ databaseUrl });
        // The listener connects beside the pool; wait for it so that the answers really come from memory.
        await eventually(5000, async () => registry.metadata.tagChanges.version() !== null);
      } else {
        registry = await createTestRegistry(engine === 'late' ? { tagChanges: silentSignal } : {});
        databaseUrl = `sqlite:${registry.root}/registry.db`;
      }
    });
    after(async () => {
      await registry?.close();
      await drop?.();
    });

    const digestOf = async (repository: string, tag: string): Promise<string | number> => {
      const response = await registry.request.get(`/v2/${repository}/manifests/${tag}`).set('Accept', allManifestTypes);
      return response.status === 200 ? String(response.headers['docker-content-digest']) : response.status;
    };
    const headDigest = async (repository: string, tag: string): Promise<string | number> => {
      const response = await registry.request.head(`/v2/${repository}/manifests/${tag}`).set('Accept', allManifestTypes);
      return response.status === 200 ? String(response.headers['docker-content-digest']) : response.status;
    };
    const tagsOf = async (repository: string): Promise<string[]> => ((await registry.request.get(`/v2/${repository}/tags/list`).expect(200)).body as { tags: string[] }).tags;

    it('a push, a delete, a restore and a manifest delete are answered at once by the next GET, HEAD and tags/list', async () => {
      const [one, two] = [imageManifest(), imageManifest()] as [TestManifest, TestManifest];
      await pushManifest(registry.request, 'cache/app', 'latest', one);
      for (let round = 0; round < 3; round++) assert.equal(await digestOf('cache/app', 'latest'), one.digest);
      assert.deepEqual(await tagsOf('cache/app'), ['latest']);

      await pushManifest(registry.request, 'cache/app', 'latest', two);
      assert.equal(await digestOf('cache/app', 'latest'), two.digest);
      assert.equal(await headDigest('cache/app', 'latest'), two.digest);
      await pushManifest(registry.request, 'cache/app', 'v2', two);
      assert.deepEqual(await tagsOf('cache/app'), ['latest', 'v2']);

      await registry.request.post('/api/v1/repositories/cache/app/tags/latest/restore').set('Content-Type', 'application/json').send({ digest: one.digest }).expect(200);
      assert.equal(await digestOf('cache/app', 'latest'), one.digest);

      await registry.request.delete('/v2/cache/app/manifests/v2').expect(202);
      assert.equal(await digestOf('cache/app', 'v2'), 404);
      assert.deepEqual(await tagsOf('cache/app'), ['latest']);

      await registry.request.delete(`/v2/cache/app/manifests/${one.digest}`).expect(202);
      assert.equal(await digestOf('cache/app', 'latest'), 404);
      assert.equal(await headDigest('cache/app', 'latest'), 404);
      assert.deepEqual(await tagsOf('cache/app'), []);
    });

    it('GETs racing 30 pushes of one tag never answer an older digest once a push is acknowledged', async () => {
      const manifests = Array.from({ length: 30 }, () => imageManifest({ layerSize: 64 }));
      for (const manifest of manifests) await pushManifest(registry.request, 'cache/race', manifest.digest, manifest);
      await registry.request.put('/v2/cache/race/manifests/latest').set('Content-Type', manifests[0]!.mediaType).send(manifests[0]!.bytes.toString()).expect(201);
      let pushing = true;
      const pushed = new Set(manifests.map((manifest) => manifest.digest));
      let readerAnswers = 0;
      // Eight clients reading the tag back to back, so that answers are loaded and kept while it moves.
      const readers = Array.from({ length: 8 }, async () => {
        while (pushing) {
          const digest = await digestOf('cache/race', 'latest');
          assert.ok(typeof digest === 'string' && pushed.has(digest), `answered ${digest}`);
          readerAnswers++;
        }
      });
      try {
        for (const manifest of manifests.slice(1)) {
          await registry.request.put('/v2/cache/race/manifests/latest').set('Content-Type', manifest.mediaType).send(manifest.bytes.toString()).expect(201);
          assert.equal(await digestOf('cache/race', 'latest'), manifest.digest, 'the GET after the 201 answers the pushed digest');
          assert.equal(await headDigest('cache/race', 'latest'), manifest.digest);
        }
      } finally {
        pushing = false;
        await Promise.all(readers);
      }
      assert.ok(readerAnswers > 30, `the readers made ${readerAnswers} requests`);
    });

    it('a tag moved by another process on the same database (an import beside the server) is answered soon after', { skip: engine === 'late' ? 'the signal from the database is what this test is about' : undefined }, async () => {
      const [one, two] = [imageManifest(), imageManifest()] as [TestManifest, TestManifest];
      await pushManifest(registry.request, 'cache/beside', 'latest', one);
      await pushManifest(registry.request, 'cache/beside', two.digest, two);
      assert.equal(await digestOf('cache/beside', 'latest'), one.digest);
      assert.equal(await digestOf('cache/beside', 'latest'), one.digest);
      const other = await openMetadataDatabase(databaseUrl);
      try {
        const moveTo = async (manifest: TestManifest, tag: string) => {
          const repository = (await findRepository(other.db, 'cache/beside'))!;
          const row = (await findManifest(other.db, repository.id, manifest.digest))!;
          await other.db.transaction().execute((transaction) => moveTag(transaction, repository.id, tag, row.id, Date.now()));
        };
        await moveTo(two, 'latest');
        const tookMs = await eventually(2000, async () => (await digestOf('cache/beside', 'latest')) === two.digest);
        console.log(`# another process's move of the tag answered after ${tookMs} ms`);
        await moveTo(one, 'fresh');
        await eventually(2000, async () => (await tagsOf('cache/beside')).includes('fresh'));
      } finally {
        await other.close();
      }
    });

    if (engine === 'postgres') {
      it('with the notification listener cut off, answers follow the database, and come from memory again once it is back', async () => {
        const [one, two] = [imageManifest(), imageManifest()] as [TestManifest, TestManifest];
        await pushManifest(registry.request, 'cache/cut', 'latest', one);
        await pushManifest(registry.request, 'cache/cut', two.digest, two);
        assert.equal(await digestOf('cache/cut', 'latest'), one.digest);
        const admin = new pg.Client({ connectionString: databaseUrl });
        await admin.connect();
        try {
          const listeners = await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen %'");
          assert.equal(listeners.rowCount, 1, 'one listening connection was cut');
          await eventually(2000, async () => registry.metadata.tagChanges.version() === null);
          await admin.query("update tags set manifest_id = (select id from manifests where digest = $1) where name = 'latest' and repository_id = (select id from repositories where name = 'cache/cut')", [two.digest]);
          assert.equal(await digestOf('cache/cut', 'latest'), two.digest, 'while the listener is down, every answer asks the database');
          await eventually(5000, async () => registry.metadata.tagChanges.version() !== null);
          assert.equal(await digestOf('cache/cut', 'latest'), two.digest);
          await admin.query("update tags set manifest_id = (select id from manifests where digest = $1) where name = 'latest' and repository_id = (select id from repositories where name = 'cache/cut')", [one.digest]);
          await eventually(2000, async () => (await digestOf('cache/cut', 'latest')) === one.digest);
        } finally {
          await admin.end();
        }
      });
    }
  });
}
