import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { storageDriverContract } from './storage-driver-contract.js';

storageDriverContract('filesystem', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'fs-driver-'));
  return { driver: await FilesystemDriver.open(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe('filesystem driver specifics', () => {
  it('writes through a temporary file; opening the root again clears a crash\'s old ones, not a write in progress', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'fs-driver-'));
    try {
      const driver = await FilesystemDriver.open(root);
      const writer = await driver.writer('blobs/x');
      writer.stream.write(Buffer.alloc(10));
      await new Promise((resolve) => setImmediate(resolve));
      const [temporary] = await readdir(path.join(root, '.tmp'));
      assert.ok(temporary, 'bytes go to a temporary file first');
      // Another process opening the same root (the gc command beside a server) leaves the write alone.
      await FilesystemDriver.open(root);
      assert.deepEqual(await readdir(path.join(root, '.tmp')), [temporary]);
      // One a crash left two hours ago goes at the next start.
      const stale = path.join(root, '.tmp', 'left-by-a-crash');
      await writeFile(stale, 'x');
      const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
      await utimes(stale, twoHoursAgo, twoHoursAgo);
      await FilesystemDriver.open(root);
      assert.deepEqual(await readdir(path.join(root, '.tmp')), [temporary]);
      await writer.cancel();
      assert.equal(await driver.stat('blobs/x'), null);
      const second = await driver.writer('blobs/y');
      await pipeline(Readable.from([Buffer.from('y')]), second.stream);
      await second.commit();
      assert.deepEqual(await readdir(path.join(root, '.tmp')), []);
      assert.deepEqual(await readdir(path.join(root, 'blobs')), ['y']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
