import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
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
  it('writes through a temporary file that a restart clears', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'fs-driver-'));
    try {
      const driver = await FilesystemDriver.open(root);
      const writer = await driver.writer('blobs/x');
      writer.stream.write(Buffer.alloc(10));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal((await readdir(path.join(root, '.tmp'))).length, 1, 'bytes go to a temporary file first');
      // A crash now would leave the temporary file; opening the driver again removes it.
      await FilesystemDriver.open(root);
      assert.deepEqual(await readdir(path.join(root, '.tmp')), []);
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
