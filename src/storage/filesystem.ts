import { randomUUID } from 'node:crypto';
import { constants as fsConstants, type Dirent } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import {
  assertValidKey,
  StorageNotFoundError,
  type ByteRange,
  type ObjectInfo,
  type AppendProgress,
  type AppendWriter,
  type StorageDriver,
  type StorageWriter,
} from './driver.js';
import type { RecyclingReadable } from './recycling.js';
import { systemClock } from '../clock.js';

const streamChunkSize = 1024 * 1024;
/**
 * Each read takes `readBudget / reads open now`, between the two bounds: one or two pulls read
 * 4 MiB at a time (fewer, larger writes to the socket: about twice the speed of 1 MiB chunks here),
 * fifty concurrent pulls 256 KiB each, so that what they hold in all stays near the budget
 * (test/bench/memory.ts prints the peak). The size is taken at every read, not when the file is
 * opened: fifty pulls starting one after another would otherwise keep the large chunks the first
 * ones got (36 MiB per buffered chunk in all instead of 8 MiB; 240 MiB at the peak instead of about 160).
 */
const readBudget = 8 * 1024 * 1024;
const readChunkBounds = { min: 256 * 1024, max: 4 * 1024 * 1024 };
let readsInFlight = 0;
/** Buffers a read keeps for reuse: one being sent, one read ahead, one spare. */
const maxFreeChunks = 3;

function readChunkSize(): number {
  const share = Math.floor(readBudget / Math.max(1, readsInFlight) / 65536) * 65536;
  return Math.min(readChunkBounds.max, Math.max(readChunkBounds.min, share));
}
/** Temporary files of writes in progress; a leftover here is from a crash and is removed at start. */
const temporaryDirectoryName = '.tmp';
/** A temporary file untouched this long is a crash's leftover, not a write in progress. */
const staleTemporaryFileMs = 3_600_000;

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

/**
 * Blob storage on a local filesystem. A new object is written to a temporary file, fsynced and
 * renamed into place, so a crash never leaves a half-written object under its key.
 */
export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly listing = 'directory';
  private readonly temporaryDirectory: string;

  private constructor(readonly root: string) {
    this.temporaryDirectory = path.join(root, temporaryDirectoryName);
  }

  static async open(root: string): Promise<FilesystemDriver> {
    const driver = new FilesystemDriver(path.resolve(root));
    await mkdir(driver.temporaryDirectory, { recursive: true });
    await driver.removeStaleTemporaryFiles();
    return driver;
  }

  /**
   * Temporary files a crash left behind. Only old ones: another process on the same root (a server
   * beside the gc or import command) may be writing the young ones right now.
   */
  private async removeStaleTemporaryFiles(): Promise<void> {
    // Against the files' own times: the system's clock.
    const staleBefore = systemClock.now() - staleTemporaryFileMs;
    for (const name of await readdir(this.temporaryDirectory)) {
      const file = path.join(this.temporaryDirectory, name);
      try {
        if ((await stat(file)).mtimeMs < staleBefore) await rm(file, { recursive: true, force: true });
      } catch (error) {
        if (!isErrno(error, 'ENOENT')) throw error;
      }
    }
  }

  private pathOf(key: string, options?: { allowEmpty?: boolean }): string {
    assertValidKey(key, options);
    return key === '' ? this.root : path.join(this.root, ...key.split('/'));
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const info = await stat(this.pathOf(key));
      return info.isFile() ? { size: info.size, modifiedAt: info.mtime } : null;
    } catch (error) {
      if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) return null;
      throw error;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    let handle: FileHandle;
    try {
      handle = await open(this.pathOf(key), fsConstants.O_RDONLY);
    } catch (error) {
      if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) throw new StorageNotFoundError(key);
      throw error;
    }
    const info = await handle.stat();
    if (!info.isFile()) {
      await handle.close();
      throw new StorageNotFoundError(key);
    }
    // With its end known, the stream ends right after the last bytes instead of after one more read
    // that finds the end of the file: until it ends the response is not complete, and a client that
    // has all its bytes (Content-Length) and closes would find the server still "sending".
    const bounds = range ?? (info.size > 0 ? { start: 0, end: info.size - 1 } : undefined);
    return new FileReadStream(handle, bounds ?? { start: 0, end: -1 });
  }

  async writer(key: string): Promise<StorageWriter> {
    const finalPath = this.pathOf(key);
    const temporaryPath = path.join(this.temporaryDirectory, randomUUID());
    const handle = await open(temporaryPath, 'wx');
    const writer = new FileWriter(handle, 0);
    return {
      stream: writer.stream,
      get written() {
        return writer.written;
      },
      commit: async () => {
        await writer.commit();
        await this.renameIntoPlace(temporaryPath, finalPath);
      },
      cancel: async () => {
        await writer.cancel();
        await rm(temporaryPath, { force: true });
      },
    };
  }

  /** Appends write in place at the key (the upload's own file), so sealing has nothing left to do. */
  async append(key: string, progress: AppendProgress): Promise<AppendWriter> {
    const finalPath = this.pathOf(key);
    if (progress.sealed) throw new Error(`${key} is sealed`);
    await mkdir(path.dirname(finalPath), { recursive: true });
    let handle: FileHandle;
    try {
      handle = await open(finalPath, 'r+');
    } catch (error) {
      if (!isErrno(error, 'ENOENT') || progress.size !== 0) throw error;
      handle = await open(finalPath, 'w');
    }
    const { size } = await handle.stat();
    if (progress.size > size) {
      await handle.close();
      throw new Error(`${key} holds ${size} bytes, fewer than the ${progress.size} committed`);
    }
    const writer = new FileWriter(handle, progress.size);
    return {
      stream: writer.stream,
      get written() {
        return writer.written;
      },
      commit: async ({ seal = false } = {}) => {
        await writer.commit();
        return { size: progress.size + writer.written, sealed: seal, state: null };
      },
      cancel: () => writer.cancel(),
    };
  }

  async abandon(key: string): Promise<void> {
    await this.delete(key);
  }

  private async renameIntoPlace(from: string, to: string): Promise<void> {
    const directory = path.dirname(to);
    // A concurrent delete may prune the freshly made parent directory; one retry covers that race.
    for (let attempt = 0; ; attempt++) {
      await mkdir(directory, { recursive: true });
      try {
        await rename(from, to);
        break;
      } catch (error) {
        if (attempt > 0 || !isErrno(error, 'ENOENT')) throw error;
      }
    }
    await syncDirectory(directory);
  }

  async move(fromKey: string, toKey: string): Promise<void> {
    const from = this.pathOf(fromKey);
    const to = this.pathOf(toKey);
    try {
      await stat(from);
    } catch (error) {
      if (isErrno(error, 'ENOENT')) throw new StorageNotFoundError(fromKey);
      throw error;
    }
    await this.renameIntoPlace(from, to);
  }

  /** A hard link made in the temporary directory and renamed into place, as writes are: a reader sees the old object or the new, never half. */
  async copy(fromKey: string, toKey: string): Promise<void> {
    const from = this.pathOf(fromKey);
    const to = this.pathOf(toKey);
    const temporary = path.join(this.temporaryDirectory, randomUUID());
    try {
      await link(from, temporary);
    } catch (error) {
      if (isErrno(error, 'ENOENT')) throw new StorageNotFoundError(fromKey);
      if (!isErrno(error, 'EXDEV') && !isErrno(error, 'EPERM') && !isErrno(error, 'EMLINK')) throw error;
      await copyFile(from, temporary);
      const handle = await open(temporary, 'r');
      await handle.sync().finally(() => handle.close());
    }
    try {
      await this.renameIntoPlace(temporary, to);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  async delete(keyOrPrefix: string): Promise<void> {
    const target = this.pathOf(keyOrPrefix);
    await rm(target, { recursive: true, force: true });
    await this.pruneEmptyParents(path.dirname(target));
  }

  private async pruneEmptyParents(directory: string): Promise<void> {
    let current = directory;
    while (current.startsWith(this.root + path.sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty, already gone or busy: stop pruning
      }
      current = path.dirname(current);
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    const start = this.pathOf(prefix, { allowEmpty: true });
    let info;
    try {
      info = await stat(start);
    } catch (error) {
      if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) return;
      throw error;
    }
    if (info.isFile()) {
      yield prefix;
      return;
    }
    yield* this.walk(start, prefix);
  }

  private async *walk(directory: string, keyPrefix: string): AsyncIterable<string> {
    let entries: Dirent[];
    try {
      entries = await readdir(directory, { withFileTypes: true });
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return;
      throw error;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const key = keyPrefix === '' ? entry.name : `${keyPrefix}/${entry.name}`;
      if (entry.isDirectory()) yield* this.walk(path.join(directory, entry.name), key);
      else if (entry.isFile()) yield key;
    }
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Reads an open file from `start` to `end` (inclusive), sizing each read by how many reads are open
 * now, and closes the file when it ends or is destroyed. One chunk is read ahead of the consumer.
 * Chunks handed back (`recycle`) are read into again while the chunk size stays the same: a pull
 * sent to a socket then reuses two or three buffers instead of allocating one per chunk (about half
 * the time of a 1 GiB pull from the page cache here, and no garbage for fifty pulls at once).
 */
class FileReadStream extends Readable implements RecyclingReadable {
  private position: number;
  private counted = true;
  /** The memory of the chunks this stream handed out and may be given back. */
  private readonly lent = new Set<ArrayBufferLike>();
  private readonly free: Buffer[] = [];

  constructor(
    private readonly handle: FileHandle,
    private readonly range: ByteRange,
  ) {
    // A high-water mark of one byte: any chunk waiting fills it, so the read ahead is one chunk.
    super({ highWaterMark: 1 });
    this.position = range.start;
    readsInFlight++;
  }

  recycle(chunk: Buffer): void {
    if (!this.lent.delete(chunk.buffer) || this.destroyed) return;
    if (this.free.length < maxFreeChunks) this.free.push(Buffer.from(chunk.buffer, 0, chunk.buffer.byteLength));
  }

  private buffer(size: number): Buffer {
    let reused: Buffer | undefined;
    while ((reused = this.free.pop()) && reused.length !== size);
    const buffer = reused ?? Buffer.allocUnsafeSlow(size);
    this.lent.add(buffer.buffer);
    return buffer;
  }

  override _read(): void {
    const remaining = this.range.end + 1 - this.position;
    if (remaining <= 0) {
      this.push(null);
      return;
    }
    // A chunk of the size every read takes now; the last one is the front of such a chunk.
    const buffer = this.buffer(readChunkSize());
    const length = Math.min(buffer.length, remaining);
    this.handle.read(buffer, 0, length, this.position).then(
      ({ bytesRead }) => {
        if (this.destroyed) return;
        if (bytesRead === 0) {
          this.destroy(new Error(`file ended ${remaining} bytes before the range it was read for`));
          return;
        }
        this.position += bytesRead;
        this.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
        if (this.position > this.range.end) this.push(null);
      },
      (error: Error) => this.destroy(error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.counted) {
      this.counted = false;
      readsInFlight--;
    }
    this.free.length = 0;
    this.handle.close().then(
      () => callback(error),
      (closeError: Error) => callback(error ?? closeError),
    );
  }
}

/** Writes into an open file from a position; the handle stays open for commit or cancel. */
class PositionedFileStream extends Writable {
  bytesWritten = 0;
  /** The write under way, so a cancel can wait for it before cutting the file back. */
  inFlight: Promise<void> = Promise.resolve();

  constructor(
    private readonly handle: FileHandle,
    private position: number,
  ) {
    super({ highWaterMark: streamChunkSize });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.track(this.writeAll([chunk]), callback);
  }

  // Chunks that queued up while a write was under way go to the disk in one system call, uncopied.
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.track(this.writeAll(chunks.map(({ chunk }) => chunk)), callback);
  }

  private track(write: Promise<void>, callback: (error?: Error | null) => void): void {
    this.inFlight = write;
    write.then(() => callback(), callback);
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending, this.position);
      this.position += bytesWritten;
      this.bytesWritten += bytesWritten;
      pending = dropWritten(pending, bytesWritten);
    }
  }
}

/** What remains of a list of buffers after the first `count` bytes were written. */
function dropWritten(buffers: Buffer[], count: number): Buffer[] {
  let skip = count;
  const rest: Buffer[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
}

/** Writes into an open file from an offset; commit cuts the file there and syncs, cancel cuts it back. */
class FileWriter {
  readonly stream: PositionedFileStream;
  private closed = false;

  constructor(
    private readonly handle: FileHandle,
    private readonly offset: number,
  ) {
    this.stream = new PositionedFileStream(handle, offset);
  }

  get written(): number {
    return this.stream.bytesWritten;
  }

  async commit(): Promise<void> {
    if (this.closed) throw new Error('writer already finished');
    this.closed = true;
    try {
      await this.handle.truncate(this.offset + this.written);
      await this.handle.sync();
    } finally {
      await this.handle.close();
    }
  }

  async cancel(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stream.destroy();
    await this.stream.inFlight.catch(() => {});
    try {
      await this.handle.truncate(this.offset);
    } catch {
      // the handle may already be unusable; the steps below still discard what was written
    }
    await this.handle.close().catch(() => {});
  }
}
