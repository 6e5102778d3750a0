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

/**
 * A write in progress. Pipe bytes into `stream`; after the stream has finished, `commit()` makes them
 * durable and visible. `cancel()` discards what this writer wrote.
 */
export interface StorageWriter {
  readonly stream: Writable;
  /** Bytes accepted so far by this writer. */
  readonly written: number;
  commit(): Promise<void>;
  cancel(): Promise<void>;
}

/** A JSON value: what a driver may keep in an append's progress, persisted by the caller. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * Where an object built by several appends (an upload: one per request, maybe on different replicas)
 * stands. The caller persists it after each commit and hands it to the next append; the driver keeps
 * nothing in memory between appends.
 */
export interface AppendProgress {
  /** Bytes appended and committed so far. */
  size: number;
  /** Sealed: the object is complete and readable at its key; no more appends. */
  sealed: boolean;
  /** The driver's own bookkeeping (for S3: the multipart upload, its parts, the carried-over tail). */
  state: JsonValue;
}

export const noProgress: AppendProgress = { size: 0, sealed: false, state: null };

/**
 * One append in progress. Pipe bytes into `stream`, then `commit()` keeps them and answers the new
 * progress; with `seal` the object also becomes readable at its key. `cancel()` leaves the object as
 * the progress it started from says, so the same progress can be appended to again.
 */
export interface AppendWriter {
  readonly stream: Writable;
  readonly written: number;
  commit(options?: { seal?: boolean }): Promise<AppendProgress>;
  cancel(): Promise<void>;
}

/**
 * The blob storage contract every driver implements (filesystem, S3). Keys are relative,
 * slash-separated paths built by storage/paths.ts only.
 */
export interface StorageDriver {
  readonly name: string;
  /**
   * How listing is cheapest: `directory` lists one directory per call (a filesystem: walk many
   * prefixes at once), `flat` a page of keys however deep (an object store: one listing).
   */
  readonly listing: 'directory' | 'flat';
  stat(key: string): Promise<ObjectInfo | null>;
  /** A stream of the object's bytes, or of one range of them. Rejects with StorageNotFoundError. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  writer(key: string): Promise<StorageWriter>;
  /**
   * Continues an object built over several appends from the progress the last commit answered
   * (`noProgress` to begin). Until sealed it is not readable; bytes committed are never lost, and an
   * append from an older progress (a retried request) replaces whatever was appended after it.
   */
  append(key: string, progress: AppendProgress): Promise<AppendWriter>;
  /** Discards an unsealed object being built by appends, with everything the driver keeps for it. */
  abandon(key: string, progress: AppendProgress): Promise<void>;
  /** Moves an object, replacing the destination if it exists. */
  move(fromKey: string, toKey: string): Promise<void>;
  /**
   * Copies an object, replacing the destination, without passing its bytes through the registry
   * where the backend can: a hard link on a filesystem (a copy across devices), a server-side copy
   * on S3. The source stays as it was.
   */
  copy(fromKey: string, toKey: string): Promise<void>;
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

/** The storage backend could not be reached or kept failing after retries; nothing was changed. */
export class StorageUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageUnavailableError';
  }
}

/**
 * Why a storage operation failed, when the cause is the machine's state rather than the request:
 * `full` (no space left, a quota reached) or `exhausted` (this process is out of file handles).
 * Null for anything else. Looks through an error's causes.
 */
export function storageFailureOf(error: unknown): { kind: 'full' | 'exhausted'; code: string } | null {
  let current = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return { kind: 'full', code };
    if (code === 'EMFILE' || code === 'ENFILE') return { kind: 'exhausted', code };
    current = (current as { cause?: unknown }).cause;
  }
  return null;
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
