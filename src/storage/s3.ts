import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Transform, type Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Logger } from 'pino';
import {
  assertValidKey,
  noProgress,
  StorageNotFoundError,
  StorageUnavailableError,
  type AppendProgress,
  type AppendWriter,
  type ByteRange,
  type ObjectInfo,
  type StorageDriver,
  type StorageWriter,
} from './driver.js';
import { copySource, readAppendState, S3Appender, S3Multipart } from './s3-append.js';

/** S3 refuses non-last multipart parts smaller than this. */
export const minimumPartSize = 5 * 1024 * 1024;
/** The largest object one CopyObject may copy; larger ones are copied part by part. */
const singleCopyLimit = 5 * 1024 * 1024 * 1024;
const deleteBatchSize = 1000;

export interface S3DriverOptions {
  bucket: string;
  /** Key prefix all objects live under ('' for the bucket's root). */
  rootDirectory: string;
  region: string;
  /** An S3-compatible endpoint (MinIO, Ceph RGW, R2…); empty for AWS. */
  endpoint: string;
  forcePathStyle: boolean;
  /** Static credentials; without them the standard AWS chain applies (env, shared files, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  partSize: number;
  /** Parts of one append held in memory (filling or being sent) at most. */
  partConcurrency: number;
  maxAttempts: number;
  /** Lifetime of presigned GET URLs for redirects, in milliseconds; null turns redirects off. */
  redirectLifetime: number | null;
  logger?: Logger;
}

const unavailableCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);
const unavailableNames = new Set(['TimeoutError', 'RequestTimeout', 'SlowDown', 'Throttling', 'ThrottlingException', 'ServiceUnavailable', 'InternalError']);

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** Errors that say S3 is down, overloaded or unreachable (after the SDK's own retries), not that the request was wrong. */
export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const status = statusOf(error);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  const code = (error as NodeJS.ErrnoException).code;
  return (code !== undefined && unavailableCodes.has(code)) || unavailableNames.has(error.name);
}

export function isNotFound(error: unknown): boolean {
  return error instanceof S3ServiceException && (error.name === 'NotFound' || error.name === 'NoSuchKey' || statusOf(error) === 404);
}

/**
 * The body of a ranged GetObject, held to the range asked for. Some S3-compatible servers answer a
 * range with more bytes than asked (s3rver ignores an end of 0); a body that does not start where
 * asked is refused rather than served.
 */
function checkedRange(body: Readable, range: ByteRange, contentRange: string | undefined, key: string): Readable {
  const start = contentRange ? Number(/^bytes (\d+)-/.exec(contentRange)?.[1]) : 0;
  if (start !== range.start) {
    body.destroy();
    throw new Error(`S3 answered bytes ${contentRange ?? '(whole object)'} of ${key} for ${range.start}-${range.end}`);
  }
  let remaining = range.end - range.start + 1;
  const held = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const piece = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
      remaining -= piece.length;
      callback(null, piece.length > 0 ? piece : undefined);
      if (remaining === 0) {
        this.push(null);
        body.unpipe(this);
        body.destroy();
      }
    },
  });
  body.on('error', (error) => {
    if (remaining > 0) held.destroy(error);
  });
  return body.pipe(held);
}

/**
 * Blob storage on S3 or an S3-compatible store. Objects are written whole (PutObject) or, past one
 * part, as multipart uploads; uploads that span requests keep their multipart state in the caller's
 * append progress (see s3-append.ts). Transient failures are retried by the SDK with backoff; what
 * still fails for want of S3 becomes StorageUnavailableError (503 to clients).
 */
export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly listing = 'flat';
  readonly client: S3Client;
  private readonly prefix: string;
  private readonly multipart: S3Multipart;

  constructor(readonly options: S3DriverOptions) {
    if (options.partSize < minimumPartSize) throw new RangeError(`part size must be at least ${minimumPartSize} bytes`);
    const agentOptions = { keepAlive: true, maxSockets: 128 };
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      maxAttempts: options.maxAttempts,
      retryMode: 'standard',
      // Our own digests guard every blob; the SDK's optional checksums would also make stream
      // bodies go out aws-chunked, which some S3-compatible servers store verbatim.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        connectionTimeout: 5_000,
        requestTimeout: 60_000,
        httpAgent: new HttpAgent(agentOptions),
        httpsAgent: new HttpsAgent(agentOptions),
      }),
    });
    // Outermost step, so it sees what is left after the SDK's retries.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          return await next(args);
        } catch (error) {
          if (!isUnavailable(error)) throw error;
          const reason = (error as Error).message || (error as Error).name;
          throw new StorageUnavailableError(`S3 ${String(context.commandName ?? 'request')} failed: ${reason}`, { cause: error });
        }
      },
      { step: 'initialize', name: 'storageUnavailable' },
    );
    this.prefix = options.rootDirectory.replace(/^\/+|\/+$/g, '');
    this.multipart = new S3Multipart(this.client, options.bucket, {
      partSize: options.partSize,
      partConcurrency: options.partConcurrency,
      minimumPartSize,
      warn: (message) => options.logger?.warn(message),
    });
  }

  /** Where objects live, for logs: s3://bucket/prefix. */
  get location(): string {
    return `s3://${this.options.bucket}/${this.prefix}`;
  }

  /** The bucket key of a storage key. */
  private objectKey(key: string, { allowEmpty = false } = {}): string {
    assertValidKey(key, { allowEmpty });
    if (key === '') return this.prefix;
    return this.prefix === '' ? key : `${this.prefix}/${key}`;
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const objectKey = this.objectKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: objectKey }));
      return { size: head.ContentLength ?? 0, modifiedAt: head.LastModified ?? new Date(0) };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const objectKey = this.objectKey(key);
    try {
      const response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.options.bucket,
          Key: objectKey,
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
      const body = response.Body as Readable;
      return range ? checkedRange(body, range, response.ContentRange, key) : body;
    } catch (error) {
      if (isNotFound(error)) throw new StorageNotFoundError(key);
      throw error;
    }
  }

  async writer(key: string): Promise<StorageWriter> {
    const appender = await this.append(key, noProgress);
    return {
      stream: appender.stream,
      get written() {
        return appender.written;
      },
      commit: async () => {
        await appender.commit({ seal: true });
      },
      cancel: () => appender.cancel(),
    };
  }

  async append(key: string, progress: AppendProgress): Promise<AppendWriter> {
    if (progress.sealed) throw new Error(`${key} is sealed`);
    const objectKey = this.objectKey(key);
    const state = readAppendState(progress);
    return S3Appender.open(this.multipart, objectKey, state);
  }

  async abandon(key: string, progress: AppendProgress): Promise<void> {
    if (progress.sealed) return;
    const objectKey = this.objectKey(key);
    const state = readAppendState(progress);
    await this.multipart.abandon(objectKey, state);
  }

  async move(fromKey: string, toKey: string): Promise<void> {
    await this.copy(fromKey, toKey);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(fromKey) }));
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const source = this.objectKey(fromKey);
    const destination = this.objectKey(toKey);
    const info = await this.stat(fromKey);
    if (!info) throw new StorageNotFoundError(fromKey);
    if (info.size > singleCopyLimit) {
      await this.multipart.copyInParts(source, destination, info.size);
    } else {
      await this.client.send(
        new CopyObjectCommand({ Bucket: this.options.bucket, Key: destination, CopySource: copySource(this.options.bucket, source) }),
      );
    }
  }

  async delete(keyOrPrefix: string): Promise<void> {
    const objectKey = this.objectKey(keyOrPrefix);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: objectKey }));
    let batch: string[] = [];
    for await (const key of this.listObjectKeys(`${objectKey}/`)) {
      batch.push(key);
      if (batch.length === deleteBatchSize) {
        await this.deleteBatch(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await this.deleteBatch(batch);
  }

  private async deleteBatch(keys: string[]): Promise<void> {
    const response = await this.client.send(
      new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }),
    );
    const failed = response.Errors ?? [];
    if (failed.length > 0) throw new Error(`S3 could not delete ${failed.length} objects, first ${failed[0]?.Key}: ${failed[0]?.Message}`);
  }

  async *list(prefix: string): AsyncIterable<string> {
    const objectPrefix = this.objectKey(prefix, { allowEmpty: true });
    const strip = this.prefix === '' ? 0 : this.prefix.length + 1;
    if (prefix !== '' && (await this.stat(prefix))) yield prefix;
    const under = objectPrefix === '' ? '' : `${objectPrefix}/`;
    for await (const key of this.listObjectKeys(under)) yield key.slice(strip);
  }

  /** Every bucket key starting with the given string, in S3's (byte-wise lexical) order. */
  private async *listObjectKeys(startsWith: string): AsyncIterable<string> {
    let continuationToken: string | undefined;
    do {
      const token = continuationToken;
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.options.bucket,
          Prefix: startsWith,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const entry of page.Contents ?? []) if (entry.Key) yield entry.Key;
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
  }

  async redirectURL(key: string, method: 'GET' | 'HEAD'): Promise<string | null> {
    if (method !== 'GET' || this.options.redirectLifetime === null) return null;
    const command = new GetObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) });
    return getSignedUrl(this.client, command, { expiresIn: Math.max(1, Math.round(this.options.redirectLifetime / 1000)) });
  }

  destroy(): void {
    this.client.destroy();
  }
}
