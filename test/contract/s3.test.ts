import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { noProgress, StorageUnavailableError, type AppendProgress } from '../../src/storage/driver.js';
import type { S3Driver } from '../../src/storage/s3.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { storageDriverContract } from './storage-driver-contract.js';

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
