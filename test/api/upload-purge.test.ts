import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

describe('purging abandoned uploads', () => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await createTestRegistry();
  });
  afterEach(async () => registry.close());

  async function startWithBytes(): Promise<string> {
    const started = await registry.request.post('/v2/team/app/blobs/uploads/').expect(202);
    const location = started.headers.location as string;
    await registry.request.patch(location).set('Content-Type', 'application/octet-stream').send(testBlob(1000).bytes).expect(202);
    return location;
  }

  it('removes sessions untouched since the cutoff with their bytes, and bytes no session owns', async () => {
    const stale = await startWithBytes();
    const orphan = await registry.storage.writer('uploads/00000000-0000-4000-8000-00000000beef/data');
    await pipeline(Readable.from([Buffer.from('left by a crash')]), orphan.stream);
    await orphan.commit();

    const uploads = registry.registry.services.uploads;
    const dry = await uploads.purge(Date.now() + 1000, true);
    assert.equal(dry.sessions.length, 1);
    assert.deepEqual(dry.orphans, ['00000000-0000-4000-8000-00000000beef']);
    assert.equal((await registry.rowCounts()).uploads, 1, 'a dry run removes nothing');
    await registry.request.get(stale).expect(204);

    const fresh = await startWithBytes();
    const kept = await uploads.purge(Date.now() - 60_000);
    assert.deepEqual(kept, { sessions: [], orphans: [] }, 'nothing is older than a minute');

    const purged = await uploads.purge(Date.now() + 1000);
    assert.equal(purged.sessions.length, 2);
    assert.equal(purged.orphans.length, 1);
    for (const location of [stale, fresh]) await registry.request.get(location).expect(404);
    assert.equal((await registry.rowCounts()).uploads, 0);
    assert.deepEqual((await registry.storedFiles()).filter((file) => file.startsWith('uploads/')), []);
  });
});
