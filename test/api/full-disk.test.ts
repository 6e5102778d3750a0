import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { testBlob } from '../helpers/blobs.js';
import { allManifestTypes, imageManifest, pushManifest } from '../helpers/images.js';
import { binary, envelopeCode } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const exec = promisify(execFile);

/** A small filesystem of its own (tmpfs), so that the registry's disk can fill up; root only. */
async function smallDisk(megabytes: number): Promise<{ directory: string; unmount(): Promise<void> } | string> {
  const directory = await mkdtemp(path.join(tmpdir(), 'registry-full-disk-'));
  try {
    await exec('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m`, 'tmpfs', directory]);
  } catch (error) {
    await rmdir(directory);
    return `cannot mount a small tmpfs (${(error as Error).message.split('\n')[0]}); the full-disk tests need root`;
  }
  return {
    directory,
    async unmount() {
      await exec('umount', [directory]);
      await rmdir(directory);
    },
  };
}

const disk = await smallDisk(12);
const skip = typeof disk === 'string' ? disk : undefined;

/**
 * The registry's disk fills up while clients push: the push that does not fit is 507 with the
 * cause logged, /readyz fails until writes go through again, and what was stored before is served
 * unharmed; nothing half-written ever shows.
 */
describe('a full disk', { skip }, () => {
  let registry: TestRegistry;
  const mounted = disk as Exclude<typeof disk, string>;
  const lines: Array<{ level: number; msg: string; code?: string; err?: { message: string } }> = [];
  const stored = imageManifest();
  const filler = () => path.join(mounted.directory, 'filler');

  before(async () => {
    registry = await createTestRegistry({
      parentDirectory: mounted.directory,
      storage: 'filesystem',
      logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) }),
    });
    await pushManifest(registry.request, 'team/app', 'v1', stored);
  });
  after(async () => {
    await registry?.close();
    await mounted.unmount();
  });

  it('a blob larger than the space left is 507 INSUFFICIENT_STORAGE, logged as ENOSPC, and nothing of it is kept', async () => {
    const big = testBlob(24 * 1024 * 1024);
    const start = await registry.request.post('/v2/team/app/blobs/uploads/').expect(202);
    const response = await registry.request.patch(start.headers.location as string).set('Content-Type', 'application/octet-stream').send(big.bytes);
    assert.equal(response.status, 507);
    assert.equal(envelopeCode(response), 'INSUFFICIENT_STORAGE');
    const logged = lines.find((line) => line.level === 50 && line.code === 'ENOSPC');
    assert.ok(logged, `an error line names ENOSPC: ${JSON.stringify(lines.filter((line) => line.level >= 40).slice(-3))}`);
    assert.match(logged.msg, /blob storage has no space left \(ENOSPC\)/);
    assert.ok(!lines.some((line) => line.msg.includes('client went away')), 'not mistaken for a client that left');
    await registry.request.head(`/v2/team/app/blobs/${big.digest}`).expect(404);
    // Smaller writes still fit: readiness fails only while they do not.
    await registry.request.get('/readyz').expect(200);
  });

  it('with the disk full to the last byte, a write only the database takes is 507 naming SQLITE_FULL, not a failed rollback', async () => {
    const session = await registry.request.post('/v2/team/app/blobs/uploads/').expect(202);
    // What is left of the disk goes to a file, a little at a time until nothing more fits.
    await exec('sh', ['-c', `dd if=/dev/zero of=${filler()} bs=4k 2>/dev/null || true`]);
    let answer = 0;
    for (let attempt = 0; attempt < 200 && answer !== 507; attempt++) answer = (await registry.request.post(`/v2/team/full${attempt}/blobs/uploads/`)).status;
    assert.equal(answer, 507, 'upload sessions are rows only: the database runs out of room');
    const full = lines.find((line) => line.level === 50 && line.code === 'SQLITE_FULL');
    assert.ok(full, `an error line names SQLITE_FULL: ${JSON.stringify(lines.filter((line) => line.level >= 40).slice(-3))}`);
    assert.ok(!lines.some((line) => JSON.stringify(line).includes('no transaction is active')));
    const pulled = await registry.request.get(`/v2/team/app/manifests/v1`).set('Accept', allManifestTypes).buffer(true).parse(binary).expect(200);
    assert.deepEqual(pulled.body, stored.bytes, 'what was stored before is served as it was');
    for (const blob of stored.blobs) {
      const bytes = await registry.request.get(`/v2/team/app/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
      assert.deepEqual(bytes.body, blob.bytes);
    }
    // A session opened before the disk filled: its bytes go to storage first, and do not fit.
    const refused = await registry.request.patch(session.headers.location as string).set('Content-Type', 'application/octet-stream').send(testBlob(64 * 1024).bytes).expect(507);
    assert.equal(envelopeCode(refused), 'INSUFFICIENT_STORAGE');
    const ready = await registry.request.get('/readyz').expect(503);
    assert.match(ready.body.checks.database, /^full: writes fail with SQLITE_FULL since /);
    assert.match(ready.body.checks.storage, /^full: writes fail with ENOSPC since /);
  });

  it('once there is room again, /readyz is 200 and pushes go through', async () => {
    await rm(filler(), { force: true });
    await writeFile(path.join(mounted.directory, 'note'), 'room again');
    const ready = await registry.request.get('/readyz').expect(200);
    assert.deepEqual(ready.body.checks, { database: 'ok', storage: 'ok', draining: 'ok' });
    await pushManifest(registry.request, 'team/app', 'v2', imageManifest());
  });
});
