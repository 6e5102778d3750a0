import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { AppendProgress, AppendWriter, JsonValue } from './driver.js';

/** The x-amz-copy-source value: bucket and key, each path segment URL-encoded. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/** S3 numbers parts 1..10000. */
const maximumPartNumber = 10_000;

export interface StoredPart {
  number: number;
  etag: string;
  size: number;
}

/**
 * What an S3 append keeps between requests (inside AppendProgress.state): the multipart upload, the
 * parts sent so far, and the tail too small to be a part (< 5 MiB), kept as its own object until more
 * bytes arrive. `superseded` lists tails of earlier progress, deleted once this progress is persisted.
 */
export interface S3AppendState {
  uploadId: string | null;
  parts: StoredPart[];
  /** Bytes of the carried-over tail, which starts where the parts end. */
  carry: number;
  /** sha256 (hex) of the tail: what is read back must be what was written. */
  carryDigest: string | null;
  superseded: number[];
}

const emptyState: S3AppendState = { uploadId: null, parts: [], carry: 0, carryDigest: null, superseded: [] };

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The object holding an append's carried-over tail that starts at `offset`. */
export function carryKey(objectKey: string, offset: number): string {
  return `${objectKey}.carry-${offset}`;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function partsEnd(parts: readonly StoredPart[]): number {
  return parts.reduce((total, part) => total + part.size, 0);
}

/** Reads back the state an earlier commit answered, checking it adds up to the progress's size. */
export function readAppendState(progress: AppendProgress): S3AppendState {
  if (progress.state === null) {
    if (progress.size !== 0) throw new Error(`append progress of ${progress.size} bytes has no S3 state`);
    return emptyState;
  }
  const state = progress.state as unknown as Partial<S3AppendState>;
  const valid =
    typeof state === 'object' &&
    (state.uploadId === null || typeof state.uploadId === 'string') &&
    Array.isArray(state.parts) &&
    state.parts.every((part) => isCount(part?.number) && typeof part.etag === 'string' && isCount(part.size)) &&
    isCount(state.carry) &&
    (state.carry === 0 ? state.carryDigest === null : typeof state.carryDigest === 'string') &&
    Array.isArray(state.superseded) &&
    state.superseded.every(isCount);
  if (!valid) throw new Error('malformed S3 append state');
  const checked = state as S3AppendState;
  if (partsEnd(checked.parts) + checked.carry !== progress.size) {
    throw new Error(`S3 append state holds ${partsEnd(checked.parts) + checked.carry} bytes, progress says ${progress.size}`);
  }
  return checked;
}

/**
 * Carried-over tails this process wrote lately, up to a byte budget (oldest dropped first), so that the
 * next append of the same upload here (typically the PUT after docker's one PATCH) need not read them
 * back from S3. Another replica, or this one after a restart, reads the object instead.
 */
export class RecentTails {
  private readonly entries = new Map<string, { digest: string; bytes: Buffer }>();
  private held = 0;

  constructor(private readonly budget: number) {}

  remember(key: string, digest: string, bytes: Buffer): void {
    this.forget(key);
    if (bytes.length > this.budget) return;
    this.entries.set(key, { digest, bytes: Buffer.from(bytes) });
    this.held += bytes.length;
    for (const oldest of this.entries.keys()) {
      if (this.held <= this.budget) break;
      this.forget(oldest);
    }
  }

  /** The tail written under `key` with this digest, once; undefined when not held (or not the same). */
  take(key: string, digest: string): Buffer | undefined {
    const entry = this.entries.get(key);
    this.forget(key);
    return entry?.digest === digest ? entry.bytes : undefined;
  }

  forget(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.held -= entry.bytes.length;
  }

  get size(): number {
    return this.held;
  }
}

export interface MultipartSettings {
  partSize: number;
  partConcurrency: number;
  minimumPartSize: number;
  warn(message: string): void;
}

/** The S3 calls appends are made of, on one bucket. */
export class S3Multipart {
  private warnedAboutAbort = false;
  readonly recentTails: RecentTails;

  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    readonly settings: MultipartSettings,
  ) {
    this.recentTails = new RecentTails(settings.partSize * settings.partConcurrency);
  }

  async create(key: string): Promise<string> {
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
    if (!created.UploadId) throw new Error('S3 answered CreateMultipartUpload without an UploadId');
    return created.UploadId;
  }

  async uploadPart(key: string, uploadId: string, number: number, body: Buffer): Promise<StoredPart> {
    if (number > maximumPartNumber) throw new Error(`an object may have at most ${maximumPartNumber} parts`);
    const sent = await this.client.send(
      new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: number, Body: body, ContentLength: body.length }),
    );
    if (!sent.ETag) throw new Error('S3 answered UploadPart without an ETag');
    return { number, etag: sent.ETag, size: body.length };
  }

  async complete(key: string, uploadId: string, parts: readonly StoredPart[]): Promise<void> {
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: [...parts].sort((a, b) => a.number - b.number).map((part) => ({ PartNumber: part.number, ETag: part.etag })) },
      }),
    );
  }

  async abort(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
    } catch (error) {
      if (error instanceof S3ServiceException && error.name === 'NoSuchUpload') return;
      // Some S3-compatible servers cannot abort; their unfinished parts stay until a lifecycle rule removes them.
      if (error instanceof S3ServiceException && (error.name === 'NotImplemented' || error.name === 'MethodNotAllowed')) {
        if (!this.warnedAboutAbort) this.settings.warn(`this S3 server cannot abort multipart uploads (${error.name}); set a lifecycle rule that does`);
        this.warnedAboutAbort = true;
        return;
      }
      throw error;
    }
  }

  async putObject(key: string, body: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length }));
  }

  async deleteObject(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** Reads the first `length` bytes of an object into `target`. */
  async readInto(key: string, length: number, target: Buffer): Promise<void> {
    const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${length - 1}` }));
    let filled = 0;
    for await (const piece of response.Body as AsyncIterable<Buffer>) {
      filled += piece.copy(target, filled, 0, Math.min(piece.length, length - filled));
    }
    if (filled !== length) throw new Error(`${key} holds ${filled} bytes, ${length} expected`);
  }

  /** Server-side copy of an object too large for one CopyObject, part by part. */
  async copyInParts(source: string, destination: string, size: number): Promise<void> {
    const uploadId = await this.create(destination);
    const partSize = Math.max(this.settings.partSize, Math.ceil(size / maximumPartNumber), 64 * 1024 * 1024);
    try {
      const parts: StoredPart[] = [];
      for (let start = 0, number = 1; start < size; start += partSize, number++) {
        const end = Math.min(start + partSize, size) - 1;
        const copied = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: destination,
            UploadId: uploadId,
            PartNumber: number,
            CopySource: copySource(this.bucket, source),
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        const etag = copied.CopyPartResult?.ETag;
        if (!etag) throw new Error('S3 answered UploadPartCopy without an ETag');
        parts.push({ number, etag, size: end - start + 1 });
      }
      await this.complete(destination, uploadId, parts);
    } catch (error) {
      await this.abort(destination, uploadId).catch(() => {});
      throw error;
    }
  }

  async abandon(key: string, state: S3AppendState): Promise<void> {
    if (state.uploadId) await this.abort(key, state.uploadId);
    const carries = [...state.superseded, ...(state.carry > 0 ? [partsEnd(state.parts)] : [])];
    for (const offset of carries) {
      this.recentTails.forget(carryKey(key, offset));
      await this.deleteObject(carryKey(key, offset));
    }
  }

  /** A carried-over tail into `target`: from memory when this process wrote it, else from S3, checked against its digest. */
  async loadCarry(key: string, length: number, digest: string, target: Buffer): Promise<void> {
    const held = this.recentTails.take(key, digest);
    if (held && held.length === length) {
      held.copy(target);
      return;
    }
    await this.readInto(key, length, target);
    if (sha256Hex(target.subarray(0, length)) !== digest) {
      throw new Error(`the carried-over bytes in ${key} changed after they were written (two requests appended to one upload at once?)`);
    }
  }
}

/**
 * One append onto an S3 object. Bytes fill part-size buffers; each full buffer is sent as a part while
 * the next fills, with at most `partConcurrency` buffers alive, so memory stays flat however large
 * the stream. At commit the tail becomes the last part (seal), a part of its own (≥ 5 MiB), or the
 * carried-over object that the next append starts from.
 */
export class S3Appender implements AppendWriter {
  readonly stream: Writable;
  written = 0;
  private readonly parts: StoredPart[];
  private nextPartNumber: number;
  private uploadId: string | null;
  private uploadCreation: Promise<string> | null = null;
  private createdHere = false;
  private current: Buffer | null = null;
  private filled = 0;
  private readonly spare: Buffer[] = [];
  private allocated = 0;
  private readonly sending = new Set<Promise<void>>();
  private failure: unknown = null;
  private finished = false;
  /** The carried-over tail is loaded when bytes come after it, or at a seal; an empty commit leaves it be. */
  private carryPending: boolean;

  private constructor(
    private readonly multipart: S3Multipart,
    private readonly key: string,
    private readonly state: S3AppendState,
    private readonly startSize: number,
  ) {
    this.parts = [...state.parts];
    this.nextPartNumber = state.parts.reduce((highest, part) => Math.max(highest, part.number), 0) + 1;
    this.uploadId = state.uploadId;
    this.carryPending = state.carry > 0;
    this.stream = new Writable({
      highWaterMark: 1024 * 1024,
      write: (chunk: Buffer, _encoding, callback) => {
        this.take(chunk).then(() => callback(), callback);
      },
    });
  }

  /** Starts an append, dropping the tails that earlier progress superseded. */
  static async open(multipart: S3Multipart, key: string, state: S3AppendState): Promise<S3Appender> {
    for (const offset of state.superseded) await multipart.deleteObject(carryKey(key, offset));
    return new S3Appender(multipart, key, state, partsEnd(state.parts) + state.carry);
  }

  /** Puts the carried-over tail at the start of the first part buffer. */
  private async loadCarry(): Promise<void> {
    if (!this.carryPending) return;
    this.carryPending = false;
    const buffer = await this.acquire();
    await this.multipart.loadCarry(carryKey(this.key, partsEnd(this.state.parts)), this.state.carry, this.state.carryDigest ?? '', buffer);
    this.current = buffer;
    this.filled = this.state.carry;
  }

  private async take(chunk: Buffer): Promise<void> {
    const { partSize } = this.multipart.settings;
    await this.loadCarry();
    let offset = 0;
    while (offset < chunk.length) {
      if (this.failure) throw this.failure;
      if (!this.current) {
        this.current = await this.acquire();
        this.filled = 0;
      }
      const copied = chunk.copy(this.current, this.filled, offset, Math.min(chunk.length, offset + partSize - this.filled));
      this.filled += copied;
      offset += copied;
      this.written += copied;
      if (this.filled === partSize) {
        this.send(this.current, this.filled);
        this.current = null;
        this.filled = 0;
      }
    }
  }

  /** A free part buffer: a spare one, a new one while under the limit, or the next one a send frees. */
  private async acquire(): Promise<Buffer> {
    const { partSize, partConcurrency } = this.multipart.settings;
    for (;;) {
      const spare = this.spare.pop();
      if (spare) return spare;
      if (this.allocated < partConcurrency) {
        this.allocated++;
        return Buffer.allocUnsafe(partSize);
      }
      await Promise.race(this.sending);
      if (this.failure) throw this.failure;
    }
  }

  private ensureUpload(): Promise<string> {
    if (this.uploadId) return Promise.resolve(this.uploadId);
    this.uploadCreation ??= this.multipart.create(this.key).then((id) => {
      this.uploadId = id;
      this.createdHere = true;
      return id;
    });
    return this.uploadCreation;
  }

  /** Sends a buffer as the next part in the background; the buffer returns to the spares when done. */
  private send(buffer: Buffer, length: number): void {
    const number = this.nextPartNumber++;
    const sent = (async () => {
      const uploadId = await this.ensureUpload();
      this.parts.push(await this.multipart.uploadPart(this.key, uploadId, number, buffer.subarray(0, length)));
    })()
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.spare.push(buffer);
        this.sending.delete(sent);
      });
    this.sending.add(sent);
  }

  private async drain(): Promise<void> {
    while (this.sending.size > 0) await Promise.all(this.sending);
    if (this.failure) throw this.failure;
  }

  async commit({ seal = false } = {}): Promise<AppendProgress> {
    if (this.finished) throw new Error('append already finished');
    this.finished = true;
    await this.drain();
    const size = this.startSize + this.written;
    if (this.carryPending && !seal) {
      // Nothing arrived: the progress stands as it was (the superseded tails are gone since open).
      this.release();
      return { size, sealed: false, state: { ...this.state, superseded: [] } as unknown as JsonValue };
    }
    await this.loadCarry();
    const tail = this.current ? this.current.subarray(0, this.filled) : Buffer.alloc(0);
    const oldCarry = this.state.carry > 0 ? [partsEnd(this.state.parts)] : [];
    if (seal) {
      if (this.uploadId === null) {
        await this.multipart.putObject(this.key, tail);
      } else {
        if (tail.length > 0 || this.parts.length === 0) this.parts.push(await this.multipart.uploadPart(this.key, this.uploadId, this.nextPartNumber++, tail));
        await this.multipart.complete(this.key, this.uploadId, this.parts);
      }
      this.release();
      for (const offset of [...this.state.superseded, ...oldCarry]) await this.multipart.deleteObject(carryKey(this.key, offset));
      return { size, sealed: true, state: null };
    }
    let carry = 0;
    let carryDigest: string | null = null;
    if (tail.length >= this.multipart.settings.minimumPartSize) {
      const uploadId = await this.ensureUpload();
      this.parts.push(await this.multipart.uploadPart(this.key, uploadId, this.nextPartNumber++, tail));
    } else if (tail.length > 0) {
      const key = carryKey(this.key, partsEnd(this.parts));
      carryDigest = sha256Hex(tail);
      await this.multipart.putObject(key, tail);
      this.multipart.recentTails.remember(key, carryDigest, tail);
      carry = tail.length;
    }
    this.release();
    const carryOffset = partsEnd(this.parts);
    const superseded = oldCarry.filter((offset) => carry === 0 || offset !== carryOffset);
    const state: S3AppendState = {
      uploadId: this.uploadId,
      parts: [...this.parts].sort((a, b) => a.number - b.number),
      carry,
      carryDigest,
      superseded,
    };
    return { size, sealed: false, state: state as unknown as JsonValue };
  }

  async cancel(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.stream.destroy();
    while (this.sending.size > 0) await Promise.allSettled(this.sending);
    this.release();
    // A multipart upload this append began is known to no persisted progress: nothing else would end it.
    if (this.createdHere && this.uploadId) await this.multipart.abort(this.key, this.uploadId).catch(() => {});
  }

  private release(): void {
    this.current = null;
    this.spare.length = 0;
  }
}
