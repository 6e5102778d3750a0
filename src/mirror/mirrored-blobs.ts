import type { BlobOpening } from '../registry/repository-content.js';
import type { Logger } from 'pino';
import { findBlob, insertBlob } from '../metadata/blobs.js';
import { isForeignKeyViolation } from '../metadata/database.js';
import { findMirrorBlob, linkMirrorBlob } from '../metadata/mirror.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { claimWrite, releaseWrite } from '../registry/blob-writes.js';
import type { BlobDescriptor, RegistryStores } from '../registry/context.js';
import { storagePaths } from '../storage/paths.js';
import type { MirrorTarget } from './addressing.js';
import { BlobFetch } from './blob-fetch.js';
import { SingleFlight } from './single-flight.js';
import { upstreamRepository, type Upstreams } from './upstreams.js';

/** What the mirror answers for a blob: bytes already here, or a stream of an upstream fetch in progress. */
function blobUnknownUpstream(target: MirrorTarget, digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', {
    message: `upstream ${target.upstream.name} has no blob ${digest} in ${target.repository}`,
    detail: { digest },
  });
}

/**
 * Upstream blobs through the cache: once cached they are served with no upstream request. A miss is
 * one upstream fetch per digest however many clients ask (single flight), its bytes streamed to every
 * waiting client while written to storage, and checked before its rows make it visible.
 */
export class MirroredBlobs {
  private readonly fetches = new SingleFlight<BlobFetch | null>();

  constructor(
    private readonly stores: RegistryStores,
    private readonly upstreams: Upstreams,
    private readonly logger: Logger,
  ) {}

  /** HEAD: the cached blob, else what upstream says of it (without fetching the bytes). */
  async stat(target: MirrorTarget, digest: Digest, via: string | undefined): Promise<BlobDescriptor> {
    const cached = await findMirrorBlob(this.stores.metadata, upstreamRepository(target), digest.value);
    if (cached) return { digest: digest.value, size: cached.size };
    // Being fetched (its last bytes may be out before its rows are in): the fetch knows the size.
    const fetching = await this.fetches.current(this.fetchKey(target, digest))?.catch(() => null);
    if (fetching?.size != null) return { digest: digest.value, size: fetching.size };
    const reply = await this.upstreams.ask(target, 'HEAD', `${target.repository}/blobs/${digest.value}`, via);
    const size = Number(reply.headers.get('content-length'));
    if (reply.status === 200 && Number.isSafeInteger(size)) return { digest: digest.value, size };
    if (reply.status === 404) throw blobUnknownUpstream(target, digest.value);
    throw this.upstreams.unavailable(target, `it answered ${reply.status} for blob ${digest.value}`);
  }

  /**
   * GET: cached bytes, else a share of the one upstream fetch of it; without `streamWhileFetching`
   * (a range request) the fetch is waited for and the stored bytes answered.
   */
  async open(target: MirrorTarget, digest: Digest, via: string | undefined, options: { streamWhileFetching: boolean }): Promise<BlobOpening> {
    const health = this.upstreams.health(target);
    const cached = await findMirrorBlob(this.stores.metadata, upstreamRepository(target), digest.value);
    if (cached) {
      health.cacheHit();
      health.counters.bytesServed += cached.size;
      return { kind: 'stored', blob: { digest: digest.value, size: cached.size } };
    }
    if (options.streamWhileFetching) {
      const fetch = await this.share(target, digest, via);
      if (fetch) {
        health.cacheMiss();
        if (fetch.size !== null) health.counters.bytesServed += fetch.size;
        return { kind: 'fetching', digest: digest.value, size: fetch.size, stream: fetch.subscribe() };
      }
    }
    const { size } = await this.cache(target, digest.value, via);
    health.counters.bytesServed += size;
    return { kind: 'stored', blob: { digest: digest.value, size } };
  }

  /** Makes sure the blob is in the cache, fetching it (once, however many ask) when it is not. */
  async cache(target: MirrorTarget, digestText: string, via?: string): Promise<{ fetched: boolean; size: number }> {
    const digest = parseDigest(digestText);
    const from = upstreamRepository(target);
    const health = this.upstreams.health(target);
    const cached = await findMirrorBlob(this.stores.metadata, from, digest.value);
    if (cached) {
      health.cacheHit();
      return { fetched: false, size: cached.size };
    }
    health.cacheMiss();
    const fetch = await this.share(target, digest, via);
    await fetch?.done.catch((error: unknown) => {
      throw this.upstreams.unavailable(target, (error as Error).message);
    });
    // Stored now: fetched above, or already here for another repository and linked to this one.
    const stored = await findMirrorBlob(this.stores.metadata, from, digest.value);
    if (!stored) throw blobUnknownUpstream(target, digest.value);
    return { fetched: fetch !== null, size: stored.size };
  }

  private fetchKey(target: MirrorTarget, digest: Digest): string {
    return `${target.upstream.name}/${target.repository}@${digest.value}`;
  }

  private share(target: MirrorTarget, digest: Digest, via: string | undefined): Promise<BlobFetch | null> {
    return this.fetches.run(
      this.fetchKey(target, digest),
      () => this.start(target, digest, via),
      (started) => started?.done,
    );
  }

  /**
   * Starts the upstream fetch of a blob; null when its bytes are already stored (for another
   * upstream repository) and the upstream confirms this repository has it too: then it is only linked.
   */
  private async start(target: MirrorTarget, digest: Digest, via: string | undefined): Promise<BlobFetch | null> {
    const from = upstreamRepository(target);
    const { storage, metadata } = this.stores;
    const key = storagePaths.blobData(digest);
    const known = await findBlob(metadata, digest.value);
    if (known && (await storage.stat(key))?.size === known.size) {
      const reply = await this.upstreams.ask(target, 'HEAD', `${target.repository}/blobs/${digest.value}`, via);
      if (reply.status === 404) throw blobUnknownUpstream(target, digest.value);
      if (reply.status !== 200) throw this.upstreams.unavailable(target, `it answered ${reply.status} for blob ${digest.value}`);
      try {
        await linkMirrorBlob(metadata, from, digest.value, this.stores.clock.now());
        return null;
      } catch (error) {
        // Race closed: garbage collection removed the blob since it was found; fetch it instead.
        if (!isForeignKeyViolation(error)) throw error;
      }
    }
    // The bytes land in blobs/ before their rows: claimed, so garbage collection keeps the digest.
    const writeId = await claimWrite(this.stores, digest.value);
    let fetch: BlobFetch;
    try {
      fetch = await this.fetchFromUpstream(target, digest, via);
    } catch (error) {
      await releaseWrite(this.stores, writeId);
      throw error;
    }
    void fetch.done
      .catch(() => undefined)
      .then(() => releaseWrite(this.stores, writeId))
      .catch((error: unknown) => this.logger.warn({ err: error, digest: digest.value }, 'could not release a blob write claim (it expires on its own)'));
    return fetch;
  }

  private async fetchFromUpstream(target: MirrorTarget, digest: Digest, via: string | undefined): Promise<BlobFetch> {
    const from = upstreamRepository(target);
    const { storage, metadata } = this.stores;
    const key = storagePaths.blobData(digest);
    const reply = await this.upstreams.ask(target, 'GET', `${target.repository}/blobs/${digest.value}`, via);
    if (reply.status === 404) {
      reply.body?.discard();
      throw blobUnknownUpstream(target, digest.value);
    }
    if (reply.status !== 200) {
      reply.body?.discard();
      throw this.upstreams.unavailable(target, `it answered ${reply.status} for blob ${digest.value}`);
    }
    const announced = reply.headers.get('content-length');
    const size = announced !== null && /^\d+$/.test(announced) ? Number(announced) : null;
    const health = this.upstreams.health(target);
    const fetch = new BlobFetch({
      storage,
      key,
      digest,
      size,
      reply,
      idleTimeoutMs: target.upstream.timeoutMs,
      onCommitted: async (committedSize) => {
        await metadata.transaction().execute(async (transaction) => {
          await insertBlob(transaction, { digest: digest.value, size: committedSize }, this.stores.clock.now());
          await linkMirrorBlob(transaction, from, digest.value, this.stores.clock.now());
        });
        health.counters.bytesFetched += committedSize;
      },
    });
    fetch.done.catch((error: unknown) =>
      this.logger.warn({ upstream: from.upstream, repository: from.repository, digest: digest.value, err: error }, 'mirrored blob fetch failed; nothing cached'),
    );
    return fetch;
  }
}
