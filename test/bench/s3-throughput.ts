/**
 * Push and pull of a 256 MiB blob on S3 (an s3rver process on loopback), three ways in one run:
 * a direct @aws-sdk/client-s3 multipart upload and GetObject download (the server's own limit),
 * the S3 driver in-process (append + seal + move into place, then read), and the registry over HTTP
 * (one streamed PATCH, PUT ?digest=, GET). The driver's overhead is printed as ratios to the direct
 * figures. Figures only: nothing here passes or fails on speed.
 */
import path from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { noProgress } from '../../src/storage/driver.js';
import { digestOfStream, patternStream } from '../helpers/blobs.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { streamPull, streamPush } from '../helpers/streaming-client.js';
import { benchSize, timed } from './limits.js';

const MiB = 1024 * 1024;
const size = benchSize('BENCH_S3_BLOB_MIB', 256, 32) * MiB;
const partSize = 10 * MiB;
const partConcurrency = 3;
const bucket = 'bench';

const megabytesPerSecond = (seconds: number): number => size / 1e6 / seconds;

/** What a plain SDK user would do: parts of `partSize`, `partConcurrency` in flight, then one GetObject. */
async function directSdk(s3: S3TestServer): Promise<{ push: number; pull: number }> {
  const key = 'direct/blob';
  const push = await timed(async () => {
    const created = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const uploadId = created.UploadId!;
    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let pending = Buffer.alloc(0);
    let number = 0;
    const send = (body: Buffer) => {
      const partNumber = ++number;
      const sent = s3.client
        .send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }))
        .then((answer) => {
          parts.push({ PartNumber: partNumber, ETag: answer.ETag! });
          inFlight.delete(sent);
        });
      inFlight.add(sent);
    };
    for await (const chunk of patternStream(size).stream) {
      pending = Buffer.concat([pending, chunk as Buffer]);
      if (pending.length >= partSize) {
        send(pending.subarray(0, partSize));
        pending = Buffer.from(pending.subarray(partSize));
        while (inFlight.size >= partConcurrency) await Promise.race(inFlight);
      }
    }
    if (pending.length > 0) send(pending);
    await Promise.all(inFlight);
    parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await s3.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
  });
  const pull = await timed(async () => {
    const answer = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const read = await digestOfStream(answer.Body as Readable);
    if (read.size !== size) throw new Error(`direct download gave ${read.size} bytes`);
  });
  await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  return { push: megabytesPerSecond(push.seconds), pull: megabytesPerSecond(pull.seconds) };
}

/** The driver in this process: what an upload does to storage (append, seal, move into place), then a read. */
async function driverInProcess(s3: S3TestServer): Promise<{ push: number; pull: number }> {
  const driver = s3.driver(bucket, { partSize, partConcurrency, maxAttempts: 3 });
  try {
    const push = await timed(async () => {
      const writer = await driver.append('uploads/bench/data', noProgress);
      await pipeline(patternStream(size).stream, writer.stream);
      await writer.commit({ seal: true });
      await driver.move('uploads/bench/data', 'blobs/bench/data');
    });
    const pull = await timed(async () => {
      const read = await digestOfStream(await driver.read('blobs/bench/data'));
      if (read.size !== size) throw new Error(`driver read gave ${read.size} bytes`);
    });
    await driver.delete('blobs/bench');
    return { push: megabytesPerSecond(push.seconds), pull: megabytesPerSecond(pull.seconds) };
  } finally {
    driver.destroy();
  }
}

/** The registry as a process on the same bucket, over HTTP, hashing on both sides. */
async function registryOverHttp(s3: S3TestServer, directory: string): Promise<{ push: number; pull: number }> {
  const env = s3.registryEnv(bucket, { REGISTRY_STORAGE_S3_CHUNKSIZE: String(partSize), REGISTRY_STORAGE_S3_PARTCONCURRENCY: String(partConcurrency) });
  const server = await startServerProcess({ root: path.join(directory, 'local'), keepLogs: false, env });
  try {
    const warm = await streamPush(server.port, 'bench/warmup', 16 * MiB);
    await streamPull(server.port, 'bench/warmup', warm);
    const push = await timed(() => streamPush(server.port, 'bench/blob', size));
    const pull = await timed(() => streamPull(server.port, 'bench/blob', push.value));
    if (pull.value.digest !== push.value || pull.value.size !== size) throw new Error('pulled bytes differ from pushed bytes');
    return { push: megabytesPerSecond(push.seconds), pull: megabytesPerSecond(pull.seconds) };
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const s3 = await startS3Server({ direct: true });
  try {
    await s3.createBucket(bucket);
    await withTemporaryDirectory('registry-bench-s3-', async (directory) => {
      // A first direct round warms the S3 server and the SDK; the second is the reference.
      await directSdk(s3);
      const direct = await directSdk(s3);
      const driver = await driverInProcess(s3);
      const registry = await registryOverHttp(s3, directory);
      const row = (label: string, value: string) => console.log(`  ${label.padEnd(52)} ${value}`);
      console.log(`S3 throughput, ${size / MiB} MiB blob on an s3rver process, parts of ${partSize / MiB} MiB, ${partConcurrency} in flight`);
      row('direct SDK: multipart upload / GetObject', `${direct.push.toFixed(0)} / ${direct.pull.toFixed(0)} MB/s`);
      row('S3 driver: append + seal + move / read', `${driver.push.toFixed(0)} / ${driver.pull.toFixed(0)} MB/s`);
      row('registry over HTTP: PATCH + PUT / GET', `${registry.push.toFixed(0)} / ${registry.pull.toFixed(0)} MB/s`);
      row('driver / direct: push, pull', `${(driver.push / direct.push).toFixed(2)}, ${(driver.pull / direct.pull).toFixed(2)}`);
      row('registry / direct: push, pull', `${(registry.push / direct.push).toFixed(2)}, ${(registry.pull / direct.pull).toFixed(2)}`);
    });
  } finally {
    await s3.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
