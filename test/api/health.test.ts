import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { writeTestPolicy } from '../helpers/auth.js';
import { createTestRegistry } from '../helpers/test-registry.js';

describe('health probes', () => {
  it('/healthz and /readyz answer without credentials when auth is on, and are logged at debug level only', async () => {
    const files = await writeTestPolicy();
    const lines: Array<{ level: number; msg: string; path?: string }> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy }, logger });
    try {
      assert.deepEqual((await registry.request.get('/healthz').expect(200)).body, { status: 'ok' });
      const ready = await registry.request.get('/readyz').expect(200);
      assert.deepEqual(ready.body, { status: 'ready', checks: { database: 'ok', storage: 'ok', draining: 'ok' } });
      await registry.request.get('/v2/').expect(401);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const requests = lines.filter((line) => line.msg === 'request');
      assert.deepEqual(requests.filter((line) => line.path === '/healthz' || line.path === '/readyz').map((line) => line.level), [20, 20], 'probes at debug');
      assert.deepEqual(requests.filter((line) => line.path === '/v2/').map((line) => line.level), [30], 'the rest at info');
    } finally {
      await registry.close();
    }
  });

  it('/readyz is 503 naming what failed: the database gone, or the process draining', async () => {
    const registry = await createTestRegistry();
    try {
      registry.registry.services.health.lifecycle.draining = true;
      const draining = await registry.request.get('/readyz').expect(503);
      assert.deepEqual(draining.body, { status: 'not ready', checks: { database: 'ok', storage: 'ok', draining: 'stopping' } });
      await registry.request.get('/healthz').expect(200);
      registry.registry.services.health.lifecycle.draining = false;
      await registry.metadata.close();
      const noDatabase = await registry.request.get('/readyz').expect(503);
      assert.notEqual(noDatabase.body.checks.database, 'ok');
      assert.equal(noDatabase.body.checks.storage, 'ok');
    } finally {
      await registry.close().catch(() => undefined);
    }
  });
});
