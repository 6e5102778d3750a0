import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { noProgress, StorageUnavailableError, type AppendProgress } from '../../src/storage/driver.js';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Driver } from '../../src/storage/s3.js';
import { RecentTails } from '../../src/storage/s3-append.js';
import { startS3Proxy } from '../helpers/s3-proxy.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { readAll, storageDriverContract } from './storage-driver-contract.js';

const mebibyte = 1024 * 1024;

let server: S3TestServer;
let buckets = 0;

async function freshBucket(): Promise<string> {
  const name = `contract-${++buckets}`;
  await server.createBucket(name);
  return name;
}

before(async () => {
  server = await startS3Server();
});
after(async () => server.dispose());

storageDriverContract('s3 (s3rver)', async () => {
  const bucket = await freshBucket();
  const drivers: S3Driver[] = [server.driver(bucket, { rootDirectory: 'registry/root' })];
  return {
    driver: drivers[0]!,
    another: async () => {
      const driver = server.driver(bucket, { rootDirectory: 'registry/root' });
      drivers.push(driver);
      return driver;
    },
    cleanup: async () => {
      for (const driver of drivers) driver.destroy();
    },
  };
});

/** Records what the driver sends for multipart uploads: part sizes by upload, and the parts each completion names. */
function recordMultipart(driver: S3Driver) {
  const partSizes = new Map<string, number>();
  const completions: Array<{ uploadId: string; parts: number[] }> = [];
  driver.client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { UploadId?: string; PartNumber?: number; ContentLength?: number; MultipartUpload?: { Parts?: Array<{ PartNumber?: number }> } };
      if (context.commandName === 'UploadPartCommand') partSizes.set(`${input.UploadId}/${input.PartNumber}`, input.ContentLength ?? -1);
      if (context.commandName === 'CompleteMultipartUploadCommand') {
        completions.push({ uploadId: input.UploadId ?? '', parts: (input.MultipartUpload?.Parts ?? []).map((part) => part.PartNumber ?? 0) });
      }
      return next(args);
    },
    { step: 'initialize', name: 'recordMultipart' },
  );
  return { partSizes, completions };
}

/** Keys the driver reads with GetObject, in order. */
function recordReads(driver: S3Driver): string[] {
  const keys: string[] = [];
  driver.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'GetObjectCommand') keys.push(String((args.input as { Key?: string }).Key));
      return next(args);
    },
    { step: 'initialize', name: 'recordReads' },
  );
  return keys;
}

async function append(driver: S3Driver, key: string, progress: AppendProgress, bytes: Buffer, seal = false): Promise<AppendProgress> {
  const writer = await driver.append(key, JSON.parse(JSON.stringify(progress)) as AppendProgress);
  await pipeline(Readable.from([bytes]), writer.stream);
  return writer.commit({ seal });
}

describe('s3 driver specifics', () => {
  it('never completes a multipart upload with a non-last part under 5 MiB, whatever the chunk sizes', async () => {
    const bucket = await freshBucket();
    const sizes = [1, mebibyte, 7 * mebibyte, 3, 4 * mebibyte, 1, 6 * mebibyte, mebibyte, 11 * mebibyte, 2];
    const whole = randomBytes(sizes.reduce((total, size) => total + size, 0));
    const recorded: Array<ReturnType<typeof recordMultipart>> = [];
    let progress = noProgress;
    let offset = 0;
    for (const size of sizes) {
      // Each chunk through a new driver, as when every request lands on another replica.
      const driver = server.driver(bucket, { partSize: 8 * mebibyte });
      recorded.push(recordMultipart(driver));
      progress = await append(driver, 'uploads/u/data', progress, whole.subarray(offset, offset + size));
      offset += size;
      driver.destroy();
    }
    const finisher = server.driver(bucket, { partSize: 8 * mebibyte });
    recorded.push(recordMultipart(finisher));
    progress = await append(finisher, 'uploads/u/data', progress, Buffer.alloc(0), true);
    assert.equal(progress.size, whole.length);
    const partSizes = new Map(recorded.flatMap((record) => [...record.partSizes]));
    const completions = recorded.flatMap((record) => record.completions);
    assert.equal(completions.length, 1);
    const { uploadId, parts } = completions[0]!;
    assert.ok(parts.length >= 3, `expected several parts, got ${parts.length}`);
    for (const number of parts.slice(0, -1)) {
      const size = partSizes.get(`${uploadId}/${number}`);
      assert.ok(size !== undefined && size >= 5 * mebibyte, `part ${number} has ${size} bytes`);
    }
    const stored = Buffer.concat(await (await finisher.read('uploads/u/data')).toArray());
    assert.ok(stored.equals(whole));
    assert.deepEqual(await server.keys(bucket), ['uploads/u/data'], 'no carried-over tails remain');
    finisher.destroy();
  });

  it('keeps one carried-over tail while an upload is open, deleting the tails it superseded', async () => {
    const bucket = await freshBucket();
    const driver = server.driver(bucket, { partSize: 8 * mebibyte });
    let progress = await append(driver, 'uploads/t/data', noProgress, Buffer.alloc(mebibyte, 1));
    assert.deepEqual(await server.keys(bucket), ['uploads/t/data.carry-0']);
    progress = await append(driver, 'uploads/t/data', progress, Buffer.alloc(mebibyte, 2));
    assert.deepEqual(await server.keys(bucket), ['uploads/t/data.carry-0'], 'a growing tail is rewritten in place');
    progress = await append(driver, 'uploads/t/data', progress, Buffer.alloc(4 * mebibyte, 3));
    // 6 MiB went out as a part; the old tail goes once the next append starts from this progress.
    progress = await append(driver, 'uploads/t/data', progress, Buffer.alloc(10, 4));
    assert.deepEqual(await server.keys(bucket), [`uploads/t/data.carry-${6 * mebibyte}`]);
    await driver.abandon('uploads/t/data', progress);
    assert.deepEqual(await server.keys(bucket), []);
    driver.destroy();
  });

  it('reads a carried-over tail back from S3 only when another process continues the upload', async () => {
    const bucket = await freshBucket();
    const bytes = randomBytes(7 * mebibyte);
    const here = server.driver(bucket);
    const hereReads = recordReads(here);
    // The same process seals: the 3 MiB tail it wrote is still in memory.
    const progress = await append(here, 'uploads/r/data', noProgress, bytes.subarray(0, 3 * mebibyte));
    await append(here, 'uploads/r/data', progress, bytes.subarray(3 * mebibyte), true);
    assert.deepEqual(hereReads, [], 'nothing was read back');
    assert.ok((await readAll(await here.read('uploads/r/data'))).equals(bytes));
    // Another process (a new driver) continues from the persisted progress: it reads the tail once.
    const other = await append(here, 'uploads/s/data', noProgress, bytes.subarray(0, 3 * mebibyte));
    const there = server.driver(bucket);
    const thereReads = recordReads(there);
    await append(there, 'uploads/s/data', other, bytes.subarray(3 * mebibyte), true);
    assert.deepEqual(thereReads, ['uploads/s/data.carry-0']);
    assert.ok((await readAll(await there.read('uploads/s/data'))).equals(bytes));
    here.destroy();
    there.destroy();
  });

  it('refuses a carried-over tail that changed after it was written', async () => {
    const bucket = await freshBucket();
    const first = server.driver(bucket);
    const progress = await append(first, 'uploads/c/data', noProgress, Buffer.alloc(2 * mebibyte, 1));
    await server.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'uploads/c/data.carry-0', Body: Buffer.alloc(2 * mebibyte, 2) }));
    const second = server.driver(bucket);
    await assert.rejects(append(second, 'uploads/c/data', progress, Buffer.alloc(10, 3), true), /changed after they were written/);
    await assert.rejects(
      append(second, 'uploads/c/data', { ...progress, state: { ...(progress.state as object), carryDigest: 7 } }, Buffer.alloc(1)),
      /malformed S3 append state/,
    );
    first.destroy();
    second.destroy();
  });

  it('keeps recent tails within a byte budget, oldest dropped first', () => {
    const tails = new RecentTails(10);
    tails.remember('a', 'da', Buffer.alloc(4, 1));
    tails.remember('b', 'db', Buffer.alloc(4, 2));
    tails.remember('c', 'dc', Buffer.alloc(4, 3));
    assert.equal(tails.size, 8);
    assert.equal(tails.take('a', 'da'), undefined, 'the oldest went to make room');
    assert.equal(tails.take('b', 'other digest'), undefined, 'a tail is only given back for its digest');
    assert.equal(tails.take('b', 'db'), undefined, 'and is dropped either way');
    assert.deepEqual(tails.take('c', 'dc'), Buffer.alloc(4, 3));
    assert.equal(tails.size, 0);
    tails.remember('big', 'dbig', Buffer.alloc(11));
    assert.equal(tails.size, 0, 'a tail over the budget is not kept');
  });

  it('holds at most part size × part concurrency in buffers while streaming', async () => {
    const bucket = await freshBucket();
    const driver = server.driver(bucket, { partSize: 5 * mebibyte, partConcurrency: 2 });
    let allocatedPeak = 0;
    const original = Buffer.allocUnsafe;
    let allocated = 0;
    Buffer.allocUnsafe = ((size: number) => {
      if (size === 5 * mebibyte) allocatedPeak = Math.max(allocatedPeak, ++allocated);
      return original(size);
    }) as typeof Buffer.allocUnsafe;
    try {
      const writer = await driver.writer('big/object');
      await pipeline(Readable.from(Array.from({ length: 48 }, () => randomBytes(mebibyte))), writer.stream);
      await writer.commit();
    } finally {
      Buffer.allocUnsafe = original;
    }
    assert.equal((await driver.stat('big/object'))?.size, 48 * mebibyte);
    assert.ok(allocatedPeak <= 2, `allocated ${allocatedPeak} part buffers`);
    driver.destroy();
  });

  it('signs GET URLs that fetch the object directly, when redirects are on', async () => {
    const bucket = await freshBucket();
    const driver = server.driver(bucket, { redirectLifetime: 60_000, rootDirectory: 'r' });
    const bytes = randomBytes(1000);
    const writer = await driver.writer('blobs/x');
    await pipeline(Readable.from([bytes]), writer.stream);
    await writer.commit();
    assert.equal(await driver.redirectURL('blobs/x', 'HEAD'), null, 'HEAD stays local');
    const url = await driver.redirectURL('blobs/x', 'GET');
    if (url === null) throw new Error('no URL signed');
    assert.ok(url.includes('X-Amz-Expires=60') && url.includes('/r/blobs/x?'), url);
    const fetched = await new Promise<Buffer>((resolve, reject) => {
      get(url, async (response) => {
        if (response.statusCode !== 200) reject(new Error(`status ${response.statusCode}`));
        resolve(Buffer.concat(await response.toArray()));
      }).on('error', reject);
    });
    assert.ok(fetched.equals(bytes));
    const off = server.driver(bucket);
    assert.equal(await off.redirectURL('blobs/x', 'GET'), null, 'off by default');
    driver.destroy();
    off.destroy();
  });

  it('retries transient failures (503 SlowDown, 500, reset connections) and succeeds', async () => {
    // Every other request fails, in turn as throttling, an internal error and a reset connection.
    const kinds = ['throttled', 'internal', 'reset'] as const;
    const proxy = await startS3Proxy(server.serverPort, { fault: (number) => (number % 2 === 1 ? kinds[((number - 1) / 2) % 3]! : null) });
    const bucket = await freshBucket();
    const driver = server.driver(bucket, { endpoint: `http://127.0.0.1:${proxy.port}`, maxAttempts: 3 });
    try {
      const bytes = randomBytes(12 * mebibyte + 5);
      let progress = await append(driver, 'uploads/flaky/data', noProgress, bytes.subarray(0, 7 * mebibyte));
      progress = await append(driver, 'uploads/flaky/data', progress, bytes.subarray(7 * mebibyte), true);
      assert.equal(progress.size, bytes.length);
      await driver.move('uploads/flaky/data', 'blobs/flaky/data');
      assert.ok((await readAll(await driver.read('blobs/flaky/data'))).equals(bytes), 'the object came through whole');
      assert.ok(proxy.faults.length >= 6, `every kind of failure was met and retried (${proxy.faults.join(', ')})`);
    } finally {
      driver.destroy();
      await proxy.close();
    }
  });

  it('reports an unreachable S3 as StorageUnavailableError after retrying', async () => {
    const bucket = await freshBucket();
    const driver = server.driver(bucket, { maxAttempts: 3 });
    const attempts: number[] = [];
    driver.client.middlewareStack.add(
      (next) => async (args) => {
        attempts.push(Date.now());
        return next(args);
      },
      { step: 'finalizeRequest', name: 'countAttempts' },
    );
    await server.stop();
    try {
      await assert.rejects(driver.stat('any/key'), StorageUnavailableError);
      assert.equal(attempts.length, 3, 'the SDK retried');
      await assert.rejects(driver.writer('any/key').then(async (writer) => {
        await pipeline(Readable.from([Buffer.from('x')]), writer.stream);
        await writer.commit();
      }), StorageUnavailableError);
    } finally {
      await server.start();
    }
    assert.equal(await driver.stat('any/key'), null, 'nothing was written');
    driver.destroy();
  });
});
