import { randomUUID, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { insertBlob, linkBlob } from '../metadata/blobs.js';
import { withBlobWrite } from './blob-writes.js';
import {
  advanceUpload,
  deleteUpload,
  deleteUploadIfStale,
  findStaleUploads,
  findUpload,
  findUploadById,
  findUploadIds,
  insertUploadWithinLimits,
  type UploadLimits,
  type UploadRow,
} from '../metadata/uploads.js';
import { digestOf, newHash, parseDigest, type Digest, type DigestAlgorithm } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { noProgress, type AppendProgress, type ByteRange, type JsonValue } from '../storage/driver.js';
import { storagePaths } from '../storage/paths.js';
import type { BlobDescriptor, RegistryStores } from './context.js';
import { HashStates } from './hash-states.js';
import { HashingStream } from './hashing-stream.js';
import { KeyedMutex } from './keyed-mutex.js';

export interface UploadStatus {
  id: string;
  repository: string;
  /** Bytes received so far. */
  size: number;
  /** Bytes the request that produced this status added. */
  received?: number;
}

/** What the client said about a chunk it sends: its place (Content-Range) and its length. */
export interface ChunkDescription {
  range?: ByteRange;
  length?: number;
}

/** The digest kept while bytes arrive, before the client names the one it expects. */
const streamingAlgorithm: DigestAlgorithm = 'sha256';

const uploadIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The `Range` header value of an upload holding `size` bytes, as Distribution writes it. */
export function uploadRangeHeader(size: number): string {
  return `0-${Math.max(size - 1, 0)}`;
}

/**
 * Blob uploads: sessions in the database (with the storage driver's append progress, so any replica
 * can take the next request), bytes under uploads/<id>/ in blob storage, digest computed as bytes
 * arrive. Finishing seals the bytes, verifies the digest, moves them into the content store and only
 * then writes the rows that make the blob visible.
 */
export class UploadService {
  private readonly locks = new KeyedMutex();
  /** Completions of the same digest take turns, so concurrent pushes of one blob copy it into place once. */
  private readonly publishLocks = new KeyedMutex();
  private readonly hashStates = new HashStates();

  constructor(
    private readonly stores: RegistryStores,
    /** Open sessions allowed per repository and per owner (uploads.maxperrepository, uploads.maxperaccount). */
    private readonly limits: UploadLimits = { perRepository: 0, perOwner: 0 },
  ) {}

  /**
   * Opens a session for `owner` (an account, or `address:<ip>` for an anonymous client); past the
   * limits, 429 TOOMANYREQUESTS with Retry-After and nothing written.
   */
  async start(repository: string, owner: string): Promise<UploadStatus> {
    const id = randomUUID();
    const { refused } = await insertUploadWithinLimits(this.stores.metadata, { id, repository, owner }, this.limits, this.stores.clock.now());
    if (refused) {
      const [limit, key] = refused === 'repository' ? [this.limits.perRepository, 'uploads.maxperrepository'] : [this.limits.perOwner, 'uploads.maxperaccount'];
      throw new RegistryError('TOOMANYREQUESTS', {
        message: `${limit} uploads are open ${refused === 'repository' ? `in ${repository}` : 'for this account'} already (${key}); finish or cancel some first`,
        headers: { 'Retry-After': '30' },
        detail: { limit: key },
      });
    }
    return { id, repository, size: 0 };
  }

  async status(repository: string, id: string): Promise<UploadStatus> {
    const upload = await this.load(repository, id);
    return { id, repository, size: upload.size };
  }

  /** Appends one chunk (a PATCH): streamed whole, or placed by Content-Range at the current end. */
  async append(repository: string, id: string, body: Readable, chunk: ChunkDescription): Promise<UploadStatus> {
    return this.locks.run(id, async () => {
      const upload = await this.load(repository, id);
      const { size } = await this.writeChunk(upload, body, chunk, streamingAlgorithm);
      return { id, repository, size, received: size - upload.size };
    });
  }

  /** Finishes an upload (the final PUT), with an optional last chunk, and makes the blob visible. */
  async complete(
    repository: string,
    id: string,
    digestText: string,
    body: Readable | null,
    chunk: ChunkDescription,
  ): Promise<BlobDescriptor> {
    const expected = parseDigest(digestText);
    return this.locks.run(id, async () => {
      const upload = await this.load(repository, id);
      const { size, hash } = await this.seal(upload, body, chunk, expected.algorithm);
      const actual = digestOf(expected.algorithm, hash ?? (await this.hashSealed(upload.id, expected.algorithm)));
      if (actual.value !== expected.value) {
        await this.discard(upload.id);
        throw new RegistryError('DIGEST_INVALID', { detail: { expected: expected.value, actual: actual.value } });
      }
      await this.publish(upload, expected, size);
      return { digest: expected.value, size };
    });
  }

  /** A monolithic upload (POST with ?digest= and the whole blob as body). */
  async uploadWhole(repository: string, owner: string, digestText: string, body: Readable | null, chunk: ChunkDescription): Promise<BlobDescriptor> {
    parseDigest(digestText);
    const session = await this.start(repository, owner);
    try {
      return await this.complete(repository, session.id, digestText, body, chunk);
    } catch (error) {
      await this.discard(session.id);
      throw error;
    }
  }

  async cancel(repository: string, id: string): Promise<void> {
    await this.locks.run(id, async () => {
      await this.load(repository, id);
      await this.discard(id);
    });
  }

  /**
   * Removes upload sessions untouched since the cutoff, with their bytes, and upload bytes in storage
   * that no session owns (left by a crash) and that are as old. Returns what was (or would be) removed.
   */
  async purge(touchedBefore: number, dryRun = false): Promise<{ sessions: string[]; orphans: string[] }> {
    const { storage, metadata } = this.stores;
    const sessions = await findStaleUploads(metadata, touchedBefore);
    const orphans: string[] = [];
    const storedIds = new Map<string, string>();
    for await (const key of storage.list(storagePaths.uploadsRoot)) {
      const id = key.split('/')[1];
      if (id && !storedIds.has(id)) storedIds.set(id, key);
    }
    const owned = await findUploadIds(metadata, [...storedIds.keys()]);
    for (const [id, key] of storedIds) {
      if (owned.has(id)) continue;
      const info = await storage.stat(key);
      if (info && info.modifiedAt.getTime() < touchedBefore) orphans.push(id);
    }
    if (!dryRun) {
      for (const id of sessions) {
        await this.locks.run(id, async () => {
          // Still untouched now that no request holds it: a PATCH may have come in meanwhile.
          const upload = await findUploadById(metadata, id);
          if (upload && (await deleteUploadIfStale(metadata, id, touchedBefore))) {
            this.hashStates.forget(id);
            await this.removeBytes(upload);
          }
        });
      }
      for (const id of orphans) await storage.delete(storagePaths.uploadDirectory(id));
    }
    return { sessions, orphans };
  }

  private async load(repository: string, id: string): Promise<UploadRow> {
    const upload = uploadIdPattern.test(id) ? await findUpload(this.stores.metadata, repository, id) : undefined;
    if (!upload) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { uuid: id.slice(0, 100) } });
    return upload;
  }

  private checkChunk(upload: UploadRow, chunk: ChunkDescription): number | undefined {
    const { range, length } = chunk;
    if (!range) return length;
    if (range.start !== upload.size || range.end < range.start) {
      throw new RegistryError('RANGE_INVALID', {
        message: `chunk ${range.start}-${range.end} does not start at the end of the upload (${upload.size} bytes received)`,
        headers: {
          Range: uploadRangeHeader(upload.size),
          'Docker-Upload-UUID': upload.id,
          Location: `/v2/${upload.repositoryName}/blobs/uploads/${upload.id}`,
        },
      });
    }
    const rangeLength = range.end - range.start + 1;
    if (length !== undefined && length !== rangeLength) {
      throw new RegistryError('SIZE_INVALID', { message: `Content-Length ${length} does not match Content-Range ${range.start}-${range.end}` });
    }
    return rangeLength;
  }

  /**
   * Streams a chunk onto the end of the upload's bytes and advances the session; with `seal`, the bytes
   * are then complete and readable. On any failure (bad length, client gone, storage down) the session
   * stays where it was. Answers the hash of all bytes when this process has followed the upload from
   * its start, null otherwise (the bytes are then hashed once sealed).
   */
  private async writeChunk(
    upload: UploadRow,
    body: Readable,
    chunk: ChunkDescription,
    algorithm: DigestAlgorithm,
    seal = false,
  ): Promise<{ size: number; hash: Hash | null }> {
    const progress = progressOf(upload);
    if (progress.sealed) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', { message: 'the upload is already being completed; only the final PUT may be retried' });
    }
    const expectedLength = this.checkChunk(upload, chunk);
    const hash = upload.size === 0 ? newHash(algorithm) : (this.hashStates.take(upload.id, algorithm, upload.size) ?? null);
    const hashing = new HashingStream(hash, expectedLength);
    const writer = await this.stores.storage.append(storagePaths.uploadData(upload.id), progress);
    let advanced: AppendProgress;
    try {
      await pipeline(body, hashing, writer.stream);
      if (expectedLength !== undefined && hashing.bytes !== expectedLength) {
        throw new RegistryError('SIZE_INVALID', {
          message: `received ${hashing.bytes} bytes where ${expectedLength} were announced`,
        });
      }
      advanced = await writer.commit({ seal });
    } catch (error) {
      await writer.cancel();
      throw error;
    }
    const stored = await advanceUpload(this.stores.metadata, upload.id, upload.size, advanced.size, storageStateOf(advanced), this.stores.clock.now());
    if (!stored) {
      throw new RegistryError('RANGE_INVALID', { message: 'the upload was changed by another request' });
    }
    if (hash && !seal) this.hashStates.remember(upload.id, algorithm, advanced.size, hash.copy());
    return { size: advanced.size, hash };
  }

  /** Takes the final PUT's chunk (if any) and seals the bytes; a retried PUT finds them sealed already. */
  private async seal(
    upload: UploadRow,
    body: Readable | null,
    chunk: ChunkDescription,
    algorithm: DigestAlgorithm,
  ): Promise<{ size: number; hash: Hash | null }> {
    if (progressOf(upload).sealed) {
      if (body && (chunk.length ?? 0) > 0) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', { message: 'the upload is already complete; the final PUT may not add bytes' });
      }
      return { size: upload.size, hash: null };
    }
    return this.writeChunk(upload, body ?? Readable.from([]), chunk, algorithm, true);
  }

  /** The digest of a sealed upload's bytes, read back from storage. */
  private async hashSealed(id: string, algorithm: DigestAlgorithm): Promise<Hash> {
    const hash = newHash(algorithm);
    for await (const piece of await this.stores.storage.read(storagePaths.uploadData(id))) hash.update(piece as Buffer);
    return hash;
  }

  private async publish(upload: UploadRow, digest: Digest, size: number): Promise<void> {
    const { storage, metadata } = this.stores;
    const blobKey = storagePaths.blobData(digest);
    // Claimed before the bytes are looked at: garbage collection keeps the digest until the rows are in.
    await withBlobWrite(this.stores, digest.value, async () => {
      await this.publishLocks.run(digest.value, async () => {
        const existing = await storage.stat(blobKey);
        if (!existing || existing.size !== size) await storage.move(storagePaths.uploadData(upload.id), blobKey);
      });
      await metadata.transaction().execute(async (transaction) => {
        await insertBlob(transaction, { digest: digest.value, size }, this.stores.clock.now());
        await linkBlob(transaction, upload.repositoryId, digest.value, this.stores.clock.now());
        await deleteUpload(transaction, upload.id);
      });
    });
    this.hashStates.forget(upload.id);
    await storage.delete(storagePaths.uploadDirectory(upload.id));
  }

  private async discard(id: string): Promise<void> {
    this.hashStates.forget(id);
    const upload = await findUploadById(this.stores.metadata, id);
    if (!upload) return;
    await deleteUpload(this.stores.metadata, id);
    await this.removeBytes(upload);
  }

  /** Removes an upload's bytes, and whatever the driver keeps for an unfinished one. */
  private async removeBytes(upload: UploadRow): Promise<void> {
    const { storage } = this.stores;
    const progress = progressOf(upload);
    if (!progress.sealed) await storage.abandon(storagePaths.uploadData(upload.id), progress);
    await storage.delete(storagePaths.uploadDirectory(upload.id));
  }
}

interface StoredState {
  sealed: boolean;
  driver: JsonValue;
}

function progressOf(upload: UploadRow): AppendProgress {
  if (upload.storageState === null) return { ...noProgress, size: upload.size };
  const stored = JSON.parse(upload.storageState) as StoredState;
  return { size: upload.size, sealed: stored.sealed, state: stored.driver };
}

function storageStateOf(progress: AppendProgress): string {
  const stored: StoredState = { sealed: progress.sealed, driver: progress.state };
  return JSON.stringify(stored);
}
