import type { Readable, Writable } from 'node:stream';

/** Inclusive byte range, as in HTTP: bytes start..end. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectInfo {
  size: number;
  modifiedAt: Date;
}

export interface WriterOptions {
  /**
   * Continue an object at this byte offset instead of writing a new one. Bytes before the offset are
   * kept, bytes after it are replaced. The offset may not be past the object's current size.
   * Without it the object is written whole and becomes visible only on commit.
   */
  offset?: number;
}

/**
 * A write in progress. Pipe bytes into `stream`; after the stream has finished, `commit()` makes them
 * durable and visible. `cancel()` discards what this writer wrote (for an offset write: back to the offset).
 */
export interface StorageWriter {
  readonly stream: Writable;
  /** Bytes accepted so far by this writer. */
  readonly written: number;
  commit(): Promise<void>;
  cancel(): Promise<void>;
}

/**
 * The blob storage contract every driver implements (filesystem, S3). Keys are relative,
 * slash-separated paths built by storage/paths.ts only.
 */
export interface StorageDriver {
  readonly name: string;
  stat(key: string): Promise<ObjectInfo | null>;
  /** A stream of the object's bytes, or of one range of them. Rejects with StorageNotFoundError. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  writer(key: string, options?: WriterOptions): Promise<StorageWriter>;
  /** Moves an object, replacing the destination if it exists. */
  move(fromKey: string, toKey: string): Promise<void>;
  /** Deletes an object, or every object under a prefix; deleting nothing is not an error. */
  delete(keyOrPrefix: string): Promise<void>;
  /** Every object key under a prefix, in lexical order. */
  list(prefix: string): AsyncIterable<string>;
  /** A URL the client may fetch the object from directly, where the driver supports it. */
  redirectURL?(key: string, method: 'GET' | 'HEAD'): Promise<string | null>;
}

export class StorageNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`no object at ${key}`);
    this.name = 'StorageNotFoundError';
  }
}

export class InvalidStorageKeyError extends Error {
  constructor(readonly key: string) {
    super(`invalid storage key ${JSON.stringify(key.slice(0, 300))}`);
    this.name = 'InvalidStorageKeyError';
  }
}

const keySegment = /^[A-Za-z0-9_][A-Za-z0-9._:+-]*$/;

/** Keys are relative paths of safe segments: no empty, dot or dot-dot segments, no backslashes. */
export function assertValidKey(key: string, { allowEmpty = false } = {}): void {
  if (key === '' && allowEmpty) return;
  const segments = key.split('/');
  if (key.length > 1024 || segments.some((segment) => !keySegment.test(segment))) {
    throw new InvalidStorageKeyError(key);
  }
}
