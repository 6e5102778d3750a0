import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { isRecycling } from '../../src/storage/recycling.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { storageDriverContract } from './storage-driver-contract.js';

storageDriverContract('filesystem', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'fs-driver-'));
  return { driver: await FilesystemDriver.open(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

const MiB = 1024 * 1024;

/** Runs `test` on a fresh temporary storage root, removed afterwards. */
async function withRoot(test: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), 'fs-driver-'));
  try {
    await test(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

describe('filesystem driver specifics', () => {
  it('writes through a temporary file; opening the root again clears a crash\'s old ones, not a write in progress', () =>
    withRoot(async (root) => {
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
    }));

  it('sizes each read by the reads open at that moment: a pull that began alone reads smaller chunks once 40 more are open, and larger again after', () =>
    withRoot(async (root) => {
      const driver = await FilesystemDriver.open(root);
      await writeFile(path.join(root, 'big'), Buffer.alloc(64 * MiB, 7));
      await writeFile(path.join(root, 'small'), Buffer.alloc(1024, 1));
      const first = await driver.read('big');
      const nextChunk = () => new Promise<Buffer>((resolve) => first.once('readable', () => resolve(first.read() as Buffer)));
      const alone = await nextChunk();
      assert.equal(alone.length, 4 * MiB, 'alone: 4 MiB reads');
      const others = await Promise.all(Array.from({ length: 40 }, () => driver.read('small')));
      // The chunk read ahead was sized before the others opened; the one after it is not.
      await nextChunk();
      const crowded = await nextChunk();
      assert.equal(crowded.length, 256 * 1024, 'with 41 open: 256 KiB reads');
      for (const other of others) other.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await nextChunk();
      const again = await nextChunk();
      assert.equal(again.length, 4 * MiB, 'alone again: 4 MiB reads');
      first.destroy();
      // Each range still ends on its last byte, and an empty file is an empty stream.
      const ranged: Buffer[] = [];
      for await (const chunk of await driver.read('big', { start: 5, end: 5 * MiB + 4 })) ranged.push(chunk as Buffer);
      assert.equal(Buffer.concat(ranged).length, 5 * MiB);
      await writeFile(path.join(root, 'empty'), '');
      const empty: Buffer[] = [];
      for await (const chunk of await driver.read('empty')) empty.push(chunk as Buffer);
      assert.equal(empty.length, 0);
    }));

  it('chunks handed back are read into again: a 64 MiB read sent chunk by chunk uses at most three buffers; chunks kept are never overwritten', () =>
    withRoot(async (root) => {
      const driver = await FilesystemDriver.open(root);
      const bytes = Buffer.alloc(64 * MiB);
      for (let offset = 0; offset < bytes.length; offset += 4) bytes.writeUInt32LE(offset, offset);
      await writeFile(path.join(root, 'big'), bytes);
      const stream = await driver.read('big');
      assert.ok(isRecycling(stream));
      const memory = new Set<ArrayBufferLike>();
      let offset = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        assert.ok(chunk.equals(bytes.subarray(offset, offset + chunk.length)), `bytes at ${offset}`);
        offset += chunk.length;
        memory.add(chunk.buffer);
        stream.recycle(chunk);
      }
      assert.equal(offset, bytes.length);
      assert.ok(memory.size <= 3, `${memory.size} buffers`);
      // A consumer that keeps what it reads and hands nothing back gets chunks of their own.
      const kept: Buffer[] = [];
      for await (const chunk of await driver.read('big')) kept.push(chunk as Buffer);
      assert.ok(Buffer.concat(kept).equals(bytes));
    }));

  it('a file cut short under a read ends the stream with an error instead of waiting', () =>
    withRoot(async (root) => {
      const driver = await FilesystemDriver.open(root);
      await writeFile(path.join(root, 'object'), Buffer.alloc(8 * MiB, 3));
      const stream = await driver.read('object');
      await writeFile(path.join(root, 'object'), Buffer.alloc(1024, 3));
      await assert.rejects(async () => {
        for await (const chunk of stream) void chunk;
      }, /file ended/);
    }));
});
