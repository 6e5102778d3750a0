import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { imageManifest, pushManifest } from '../helpers/images.js';
import { envelopeCode } from '../helpers/push.js';
import { createTestDatabase, postgresAdminUrl, postgresSkipReason } from '../helpers/postgres.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const skip = await postgresSkipReason();

/**
 * The registry reaches PostgreSQL through a proxy that plays the network: the database killed (every
 * connection reset, new ones refused), a partition (bytes held both ways), and a database dropped and
 * made again empty. Requests fail fast with 503 and Retry-After, and /readyz says what is wrong.
 */
describe('PostgreSQL failing under the registry', { skip }, () => {
  let database: { url: string; drop(): Promise<void> };
  let proxy: TcpProxy;
  let registry: TestRegistry;
  const lines: Array<{ level: number; msg: string; code?: string }> = [];
  const image = imageManifest();

  before(async () => {
    database = await createTestDatabase();
    const target = new URL(database.url);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(database.url);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    registry = await createTestRegistry({
      databaseUrl: viaProxy.toString(),
      databaseTimeouts: { connectMs: 1000, statementMs: 1000 },
      logger: pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) }),
    });
    await pushManifest(registry.request, 'team/app', 'v1', image);
  });
  after(async () => {
    await registry?.close();
    await proxy?.close();
    await database?.drop();
  });

  it('with the database killed, a request is 503 UNAVAILABLE with Retry-After, logged as such; then it serves again', async () => {
    proxy.cut();
    try {
      const response = await registry.request.head(`/v2/team/app/blobs/${image.blobs[0]!.digest}`).expect(503);
      assert.equal(response.headers['retry-after'], '5');
      const catalog = await registry.request.get('/v2/_catalog').expect(503);
      assert.equal(envelopeCode(catalog), 'UNAVAILABLE');
      assert.ok(lines.some((line) => line.msg.startsWith('metadata database unavailable')), JSON.stringify(lines.slice(-3)));
      const ready = await registry.request.get('/readyz').expect(503);
      assert.notEqual(ready.body.checks.database, 'ok');
    } finally {
      proxy.restore();
    }
    await registry.request.get('/v2/_catalog').expect(200);
    await registry.request.get('/readyz').expect(200);
  });

  it('with the connection frozen (a partition), a request fails within the statement timeout, not after minutes', async () => {
    proxy.freeze();
    try {
      const started = Date.now();
      const response = await registry.request.get('/v2/_catalog').expect(503);
      const took = Date.now() - started;
      assert.equal(envelopeCode(response), 'UNAVAILABLE');
      assert.equal(response.headers['retry-after'], '5');
      assert.ok(took < 8000, `answered after ${took} ms (statement timeout 1 s, connect timeout 1 s)`);
    } finally {
      proxy.thaw();
    }
    // Connections that were frozen mid-statement are of no use now; the pool makes new ones.
    let status = 0;
    for (let attempt = 0; attempt < 20 && status !== 200; attempt++) status = (await registry.request.get('/v2/_catalog')).status;
    assert.equal(status, 200);
  });

  it('with the database dropped and made again empty, /readyz is 503 naming the missing schema', async () => {
    const name = new URL(database.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: postgresAdminUrl });
    await admin.connect();
    try {
      await admin.query(`drop database ${name} with (force)`);
      await admin.query(`create database ${name}`);
    } finally {
      await admin.end();
    }
    let ready = await registry.request.get('/readyz');
    for (let attempt = 0; attempt < 20 && ready.body.checks?.database && /terminat|connect/i.test(ready.body.checks.database); attempt++) ready = await registry.request.get('/readyz');
    assert.equal(ready.status, 503);
    assert.match(ready.body.checks.database, /^no schema: /);
  });
});
