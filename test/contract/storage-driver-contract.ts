import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import {
  InvalidStorageKeyError,
  noProgress,
  StorageNotFoundError,
  type AppendProgress,
  type StorageDriver,
} from '../../src/storage/driver.js';
import { patternStream } from '../helpers/blobs.js';

export interface DriverUnderTest {
  driver: StorageDriver;
  /** A second driver on the same storage, as another replica would have. */
  another?(): Promise<StorageDriver>;
  cleanup(): Promise<void>;
}

/** Progress as the caller persists it: through JSON, so no driver may keep live objects in it. */
function persisted(progress: AppendProgress): AppendProgress {
  return JSON.parse(JSON.stringify(progress)) as AppendProgress;
}

async function appendBytes(
  driver: StorageDriver,
  key: string,
  progress: AppendProgress,
  bytes: Buffer | string,
  options: { seal?: boolean } = {},
): Promise<AppendProgress> {
  const writer = await driver.append(key, persisted(progress));
  await pipeline(Readable.from([Buffer.from(bytes)]), writer.stream);
  assert.equal(writer.written, Buffer.from(bytes).length);
  return persisted(await writer.commit(options));
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function put(driver: StorageDriver, key: string, bytes: Buffer | string): Promise<void> {
  const writer = await driver.writer(key);
  await pipeline(Readable.from([Buffer.from(bytes)]), writer.stream);
  await writer.commit();
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of iterable) keys.push(key);
  return keys;
}

/** The suite every blob storage driver passes; a driver's own test file only says how to make one. */
export function storageDriverContract(name: string, make: () => Promise<DriverUnderTest>): void {
  describe(`storage driver contract: ${name}`, () => {
    let subject: DriverUnderTest;
    let driver: StorageDriver;
    before(async () => {
      subject = await make();
      driver = subject.driver;
    });
    after(async () => subject.cleanup());

    it('stats, reads and ranges a committed object', async () => {
      assert.equal(await driver.stat('basic/missing'), null);
      await put(driver, 'basic/object', 'hello, world');
      const info = await driver.stat('basic/object');
      assert.equal(info?.size, 12);
      assert.ok(info?.modifiedAt instanceof Date);
      assert.equal((await readAll(await driver.read('basic/object'))).toString(), 'hello, world');
      assert.equal((await readAll(await driver.read('basic/object', { start: 7, end: 11 }))).toString(), 'world');
      assert.equal((await readAll(await driver.read('basic/object', { start: 0, end: 0 }))).toString(), 'h');
      assert.equal(await driver.stat('basic'), null, 'a prefix is not an object');
    });

    it('rejects reads of missing objects with StorageNotFoundError', async () => {
      await assert.rejects(driver.read('nothing/here'), StorageNotFoundError);
      await assert.rejects(driver.read('basic'), StorageNotFoundError);
    });

    it('writes nothing visible before commit, and nothing at all after cancel', async () => {
      const writer = await driver.writer('pending/object');
      writer.stream.write(Buffer.alloc(1000, 1));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(await driver.stat('pending/object'), null);
      assert.deepEqual(await collect(driver.list('pending')), []);
      await writer.cancel();
      assert.equal(await driver.stat('pending/object'), null);
      assert.deepEqual(await collect(driver.list('pending')), []);
    });

    it('builds an object over appends that resume from persisted progress, readable once sealed', async () => {
      const key = 'append/object';
      let progress = await appendBytes(driver, key, noProgress, 'hello');
      assert.deepEqual([progress.size, progress.sealed], [5, false]);
      const afterHello = progress;
      progress = await appendBytes(driver, key, progress, ', world');
      assert.equal(progress.size, 12);
      // A retried request starts again from the earlier progress: what followed it is replaced.
      progress = await appendBytes(driver, key, afterHello, ', there');
      assert.equal(progress.size, 12);
      const cancelled = await driver.append(key, persisted(progress));
      await pipeline(Readable.from([Buffer.from(' and more bytes')]), cancelled.stream);
      await cancelled.cancel();
      progress = await appendBytes(driver, key, progress, '!', { seal: true });
      assert.deepEqual([progress.size, progress.sealed], [13, true]);
      assert.equal((await readAll(await driver.read(key))).toString(), 'hello, there!');
      assert.equal((await driver.stat(key))?.size, 13);
      await assert.rejects(driver.append(key, progress));
    });

    it('seals an append that received nothing as an empty object', async () => {
      const progress = await appendBytes(driver, 'append/empty', noProgress, '', { seal: true });
      assert.equal(progress.size, 0);
      assert.equal((await driver.stat('append/empty'))?.size, 0);
      assert.equal((await readAll(await driver.read('append/empty'))).length, 0);
    });

    it('assembles appends of any sizes byte for byte, across driver instances', async () => {
      const sizes = [1, 1024 * 1024, 7 * 1024 * 1024, 3, 5 * 1024 * 1024 + 1, 12 * 1024 * 1024, 2 * 1024 * 1024, 1];
      const whole = randomBytes(sizes.reduce((total, size) => total + size, 0));
      let progress = noProgress;
      let offset = 0;
      for (const [index, size] of sizes.entries()) {
        const target = index % 2 === 0 ? driver : (await subject.another?.()) ?? driver;
        progress = await appendBytes(target, 'append/pieces', progress, whole.subarray(offset, offset + size));
        offset += size;
      }
      progress = await appendBytes(driver, 'append/pieces', progress, '', { seal: true });
      assert.equal(progress.size, whole.length);
      const stored = await readAll(await driver.read('append/pieces'));
      assert.equal(stored.length, whole.length);
      assert.ok(stored.equals(whole), 'the sealed object holds exactly the appended bytes');
    });

    it('abandons an unsealed append without leaving anything', async () => {
      let progress = await appendBytes(driver, 'abandoned/data', noProgress, Buffer.alloc(3 * 1024 * 1024, 7));
      progress = await appendBytes(driver, 'abandoned/data', progress, Buffer.alloc(6 * 1024 * 1024, 8));
      progress = await appendBytes(driver, 'abandoned/data', progress, Buffer.alloc(1024, 9));
      await driver.abandon('abandoned/data', progress);
      await driver.delete('abandoned');
      assert.deepEqual(await collect(driver.list('abandoned')), []);
    });

    it('streams a large object through with its digest intact', async () => {
      const size = 64 * 1024 * 1024 + 123;
      const source = patternStream(size);
      const writer = await driver.writer('large/object');
      await pipeline(source.stream, writer.stream);
      await writer.commit();
      assert.equal((await driver.stat('large/object'))?.size, size);
      const hash = createHash('sha256');
      for await (const chunk of await driver.read('large/object')) hash.update(chunk as Buffer);
      assert.equal(`sha256:${hash.digest('hex')}`, source.digest());
      const tail = await readAll(await driver.read('large/object', { start: size - 10, end: size - 1 }));
      assert.equal(tail.length, 10);
    });

    it('moves objects, replacing the destination', async () => {
      await put(driver, 'move/a', 'first');
      await put(driver, 'move/b', 'second');
      await driver.move('move/a', 'move/b');
      assert.equal(await driver.stat('move/a'), null);
      assert.equal((await readAll(await driver.read('move/b'))).toString(), 'first');
      await driver.move('move/b', 'elsewhere/deep/c');
      assert.equal((await readAll(await driver.read('elsewhere/deep/c'))).toString(), 'first');
      await assert.rejects(driver.move('move/missing', 'move/x'), StorageNotFoundError);
    });

    it('copies objects, replacing the destination and leaving the source; a copy outlives the source', async () => {
      await put(driver, 'copy/a', 'original');
      await put(driver, 'copy/b', 'replaced');
      await driver.copy('copy/a', 'copy/b');
      assert.equal((await readAll(await driver.read('copy/a'))).toString(), 'original');
      assert.equal((await readAll(await driver.read('copy/b'))).toString(), 'original');
      await driver.copy('copy/a', 'copied/deep/c');
      await driver.delete('copy/a');
      assert.equal((await readAll(await driver.read('copied/deep/c'))).toString(), 'original', 'deleting the source leaves the copy');
      await put(driver, 'copy/b', 'rewritten');
      assert.equal((await readAll(await driver.read('copied/deep/c'))).toString(), 'original', 'writing over one name leaves the other');
      await assert.rejects(driver.copy('copy/missing', 'copy/x'), StorageNotFoundError);
      assert.equal(await driver.stat('copy/x'), null);
    });

    it('deletes objects and whole prefixes; deleting nothing is fine', async () => {
      await put(driver, 'delete/one', '1');
      await put(driver, 'delete/tree/two', '2');
      await put(driver, 'delete/tree/sub/three', '3');
      await put(driver, 'delete/treehouse', 'kept');
      await driver.delete('delete/one');
      assert.equal(await driver.stat('delete/one'), null);
      await driver.delete('delete/tree');
      assert.deepEqual(await collect(driver.list('delete')), ['delete/treehouse']);
      await driver.delete('delete/never-was');
      await driver.delete('delete/treehouse');
      assert.deepEqual(await collect(driver.list('delete')), []);
    });

    it('lists many keys under a prefix in lexical order', async () => {
      const keys = Array.from({ length: 1200 }, (_, index) => `list/p${String(index % 7)}/k${String(index).padStart(5, '0')}`);
      for (let start = 0; start < keys.length; start += 50) {
        await Promise.all(keys.slice(start, start + 50).map((key) => put(driver, key, key)));
      }
      await put(driver, 'listing/not-under-list', 'x');
      const listed = await collect(driver.list('list'));
      assert.deepEqual(listed, [...keys].sort());
      assert.deepEqual(await collect(driver.list('list/p3')), keys.filter((key) => key.startsWith('list/p3/')).sort());
      assert.deepEqual(await collect(driver.list('list/p3/k00003')), ['list/p3/k00003']);
      assert.deepEqual(await collect(driver.list('no-such-prefix')), []);
    });

    it('serves concurrent readers and writers, and a key written twice at once holds one whole write', async () => {
      const payload = randomBytes(2 * 1024 * 1024);
      await put(driver, 'concurrent/shared', payload);
      const contenders = Array.from({ length: 8 }, (_, index) => Buffer.alloc(1024 * 1024, index));
      const reads = Array.from({ length: 10 }, async () => readAll(await driver.read('concurrent/shared')));
      const writes = contenders.map((bytes, index) => put(driver, `concurrent/own-${index}`, bytes));
      const races = contenders.map((bytes) => put(driver, 'concurrent/raced', bytes));
      await Promise.all([...writes, ...races]);
      for (const read of await Promise.all(reads)) assert.ok(read.equals(payload));
      for (const [index, bytes] of contenders.entries()) {
        assert.ok((await readAll(await driver.read(`concurrent/own-${index}`))).equals(bytes));
      }
      const raced = await readAll(await driver.read('concurrent/raced'));
      assert.ok(contenders.some((bytes) => bytes.equals(raced)), 'the raced key holds exactly one of the writes');
    });

    it('refuses keys that could leave the storage root', async () => {
      for (const key of ['../escape', '/absolute', 'a//b', 'a/./b', 'a/../b', '', 'a\\b', 'a/', '.hidden']) {
        await assert.rejects(driver.stat(key), InvalidStorageKeyError, key);
        await assert.rejects(driver.writer(key), InvalidStorageKeyError, key);
      }
    });

    it('leaves nothing behind but committed objects', async () => {
      const all = await collect(driver.list(''));
      for (const key of all) {
        assert.ok(!key.startsWith('pending/') && !key.startsWith('abandoned/'), `left behind: ${key}`);
        assert.ok(!key.includes('.carry-'), `carried-over tail left behind: ${key}`);
        assert.ok((await driver.stat(key)) !== null, `listed but not stat-able: ${key}`);
      }
    });
  });
}
