import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { digestOf, newHash, type Digest } from '../oci/digest.js';
import type { StorageDriver } from '../storage/driver.js';
import type { UpstreamReply } from './upstream-client.js';

/**
 * A client further behind the upstream than this holds the upstream read back (the fetch goes at the
 * pace of its clients, so one cold pull overlaps the upstream read, the client write and the storage
 * write from start to end); one that stays that far behind for `maxClientWaitMs` (stalled, or far
 * slower than the others) is let go and served the rest from storage once the blob is committed.
 */
const maxClientLagBytes = 4 * 1024 * 1024;
const maxClientWaitMs = 2000;
/** Bytes handed to storage and not yet written, before the upstream is read no further. */
const maxStorageLagBytes = 8 * 1024 * 1024;

interface Subscriber {
  out: PassThrough;
  /** Bytes of the blob already written to `out`. */
  offset: number;
}

/** Resolves when the stream has drained, closed, or `withinMs` passed. */
function caughtUp(stream: PassThrough, withinMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, withinMs);
    stream.once('drain', done);
    stream.once('close', done);
  });
}

export class UpstreamContentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamContentError';
  }
}

export interface BlobFetchOptions {
  storage: StorageDriver;
  /** Where the verified bytes are committed. */
  key: string;
  digest: Digest;
  /** The length upstream announced, if it did. */
  size: number | null;
  reply: UpstreamReply;
  /** Longest wait for the next chunk of the upstream body. */
  idleTimeoutMs: number;
  /** Records the committed blob (its rows); runs before waiting clients are told the fetch is done. */
  onCommitted(size: number): Promise<void>;
}

/**
 * One upstream fetch of a blob, shared by every client that asks for it meanwhile. The bytes are
 * written to storage and streamed to the clients at once; the digest (and length) are checked before
 * the blob is committed, and the last chunk is held back until then, so that no client ever gets a
 * whole body of wrong bytes. A client that cannot keep up, or arrives late, gets the rest from
 * storage after the commit; memory stays bounded. A client that leaves does not stop the fetch.
 */
export class BlobFetch {
  readonly done: Promise<void>;
  private readonly live = new Set<Subscriber>();
  private readonly behind = new Set<Subscriber>();
  private flowing = false;
  private outcome: 'pending' | 'committed' | 'failed' = 'pending';
  private failure: Error | null = null;

  constructor(private readonly options: BlobFetchOptions) {
    this.done = this.run();
    // Clients hear of a failure through their streams; the fetch's own promise is awaited by its owner.
    this.done.catch(() => {});
  }

  get size(): number | null {
    return this.options.size;
  }

  /** A stream of the whole blob for one client. */
  subscribe(): Readable {
    const subscriber: Subscriber = { out: new PassThrough({ highWaterMark: 1024 * 1024 }), offset: 0 };
    if (this.outcome === 'failed') {
      subscriber.out.destroy(this.failure ?? new Error('upstream fetch failed'));
    } else if (this.outcome === 'committed') {
      void this.serveFromStorage(subscriber, this.options.size ?? Number.MAX_SAFE_INTEGER);
    } else {
      (this.flowing ? this.behind : this.live).add(subscriber);
      subscriber.out.once('close', () => this.live.delete(subscriber));
    }
    return subscriber.out;
  }

  private async run(): Promise<void> {
    const { storage, key, digest, size, reply } = this.options;
    if (!reply.body) throw new UpstreamContentError('upstream answered without a body');
    const writer = await storage.writer(key);
    const hash = newHash(digest.algorithm);
    let received = 0;
    let heldBack: Buffer | null = null;
    let idle: NodeJS.Timeout | undefined;
    const stall = () => reply.cancel(new UpstreamContentError(`upstream body stalled for ${this.options.idleTimeoutMs} ms`));
    // A storage failure (disk full…) at any moment stops the upstream read; the loop then throws it.
    let storageFailure: Error | null = null;
    writer.stream.on('error', (error: Error) => {
      storageFailure = error;
      reply.cancel(error);
    });
    try {
      idle = setTimeout(stall, this.options.idleTimeoutMs);
      for await (const chunk of reply.body) {
        if (storageFailure) throw storageFailure;
        idle.refresh();
        received += chunk.length;
        if (size !== null && received > size) throw new UpstreamContentError(`upstream sent more than the ${size} bytes it announced`);
        hash.update(chunk);
        // Keep reading the upstream while storage catches up, up to a bound: reads and writes overlap.
        writer.stream.write(chunk);
        if (writer.stream.writableLength > maxStorageLagBytes) await once(writer.stream, 'drain');
        if (heldBack) this.deliver(heldBack);
        heldBack = chunk;
        this.flowing = true;
        await this.waitForLaggingClients();
        idle.refresh();
      }
      clearTimeout(idle);
      if (storageFailure) throw storageFailure;
      if (size !== null && received !== size) throw new UpstreamContentError(`upstream body ended after ${received} of ${size} bytes`);
      const actual = digestOf(digest.algorithm, hash);
      if (actual.value !== digest.value) throw new UpstreamContentError(`upstream sent bytes whose digest is ${actual.value}, not ${digest.value}`);
      // Verified: the clients may have the end now, while storage makes the bytes durable.
      if (heldBack) this.deliver(heldBack);
      heldBack = null;
      for (const subscriber of this.live) subscriber.out.end();
      this.live.clear();
      writer.stream.end();
      await finished(writer.stream);
      await writer.commit();
      await this.options.onCommitted(received);
    } catch (error) {
      clearTimeout(idle);
      reply.cancel(error as Error);
      await writer.cancel().catch(() => {});
      this.fail(error as Error);
      throw error;
    }
    this.outcome = 'committed';
    for (const subscriber of this.behind) void this.serveFromStorage(subscriber, received);
    this.behind.clear();
  }

  private deliver(chunk: Buffer): void {
    for (const subscriber of this.live) {
      if (subscriber.out.destroyed) {
        this.live.delete(subscriber);
        continue;
      }
      subscriber.out.write(chunk);
      subscriber.offset += chunk.length;
    }
  }

  /** Waits (up to maxClientWaitMs) for clients past the lag bound to catch up; those that do not are served from storage later. */
  private async waitForLaggingClients(): Promise<void> {
    const lagging = [...this.live].filter((subscriber) => subscriber.out.writableLength > maxClientLagBytes);
    if (lagging.length === 0) return;
    // Well inside the upstream's idle timeout, which runs on while the upstream is not read.
    const waitMs = Math.min(maxClientWaitMs, this.options.idleTimeoutMs / 2);
    await Promise.all(lagging.map((subscriber) => caughtUp(subscriber.out, waitMs)));
    for (const subscriber of lagging) {
      if (subscriber.out.writableLength > maxClientLagBytes) {
        this.live.delete(subscriber);
        this.behind.add(subscriber);
      }
    }
  }

  private fail(error: Error): void {
    this.outcome = 'failed';
    this.failure = error;
    for (const subscriber of [...this.live, ...this.behind]) subscriber.out.destroy(error);
    this.live.clear();
    this.behind.clear();
  }

  private async serveFromStorage(subscriber: Subscriber, size: number): Promise<void> {
    if (subscriber.out.destroyed) return;
    if (subscriber.offset >= size) {
      subscriber.out.end();
      return;
    }
    try {
      const rest = await this.options.storage.read(this.options.key, subscriber.offset > 0 ? { start: subscriber.offset, end: size - 1 } : undefined);
      await pipeline(rest, subscriber.out);
    } catch (error) {
      subscriber.out.destroy(error as Error);
    }
  }
}
