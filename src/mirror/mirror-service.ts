import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { findBlob, insertBlob } from '../metadata/blobs.js';
import {
  deleteMirrorReferrers,
  deleteMirrorTag,
  findMirrorBlob,
  findMirrorManifest,
  findMirrorReferrers,
  findMirrorTag,
  insertMirrorManifest,
  linkMirrorBlob,
  listMirrorTagHistory,
  listMirrorTags,
  setMirrorReferrers,
  setMirrorTag,
  type MirrorTagEvent,
  type MirrorTagHistoryQuery,
  type UpstreamRepository,
} from '../metadata/mirror.js';
import { digestBytes, parseDigest, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { maxManifestBytes, parseManifest, type Descriptor } from '../oci/manifest.js';
import { isManifestMediaType, manifestMediaTypes, mediaTypes } from '../oci/media-types.js';
import { parseLookupReference } from '../oci/reference.js';
import type { BlobService } from '../registry/blobs.js';
import type { BlobDescriptor, RegistryStores } from '../registry/context.js';
import type { ListingService, PageResult } from '../registry/listings.js';
import { manifestUnknown, negotiateManifest, type ManifestContent } from '../registry/manifest-negotiation.js';
import type { ManifestService } from '../registry/manifests.js';
import { referrersIndex, type ReferrersIndex, type ReferrersService } from '../registry/referrers.js';
import { storagePaths } from '../storage/paths.js';
import { MirrorAddressing, type MirrorTarget } from './addressing.js';
import { BlobFetch } from './blob-fetch.js';
import type { MirrorSettings, UpstreamSettings } from './settings.js';
import { SingleFlight } from './single-flight.js';
import { UpstreamClient, UpstreamUnavailableError, type UpstreamReply } from './upstream-client.js';
import { UpstreamHealth, type UpstreamStatus } from './upstream-health.js';

/** What the mirror answers for a blob: bytes already here, or a stream of an upstream fetch in progress. */
export type MirroredBlob =
  | { kind: 'stored'; blob: BlobDescriptor }
  | { kind: 'fetching'; digest: string; size: number | null; stream: Readable };

/** Accept header for upstream manifest requests: every type the registry can store and serve. */
const upstreamAccept = manifestMediaTypes.join(', ');

const localMisses = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN']);

function isLocalMiss(error: unknown): boolean {
  return error instanceof RegistryError && localMisses.has(error.code);
}

function upstreamRepository(target: MirrorTarget): UpstreamRepository {
  return { upstream: target.upstream.name, repository: target.repository };
}

/**
 * The pull-through cache, around the local services: local content of the requested name first
 * (a local override), then what was cached from the upstream, then the upstream itself. Manifests by
 * digest and blobs never change once cached; tags are served from cache for their TTL, then
 * revalidated with one HEAD. When the upstream cannot answer, cached tags are served stale.
 */
export class MirrorService {
  readonly addressing: MirrorAddressing;
  private readonly clients = new Map<string, UpstreamClient>();
  private readonly blobFetches = new SingleFlight<BlobFetch | null>();
  private readonly manifestFetches = new SingleFlight<ManifestContent>();
  private readonly referrerFetches = new SingleFlight<Descriptor[]>();

  constructor(
    private readonly stores: RegistryStores,
    private readonly local: { manifests: ManifestService; blobs: BlobService; listings: ListingService; referrers: ReferrersService },
    readonly settings: MirrorSettings,
    private readonly logger: Logger,
  ) {
    this.addressing = new MirrorAddressing(settings);
    for (const upstream of settings.upstreams) {
      const health = new UpstreamHealth(settings.failureThreshold, settings.coolOffMs);
      this.clients.set(upstream.name, new UpstreamClient(upstream, health, settings.instanceId));
    }
  }

  status(): { instanceId: string; upstreams: UpstreamStatus[] } {
    return {
      instanceId: this.settings.instanceId,
      upstreams: this.settings.upstreams.map((upstream) => this.client(upstream).health.status(upstream.name, upstream.url)),
    };
  }

  /** Changes of mirrored tags seen upstream, newest first. */
  tagHistory(query: MirrorTagHistoryQuery): Promise<MirrorTagEvent[]> {
    return listMirrorTagHistory(this.stores.metadata, query);
  }

  private client(upstream: UpstreamSettings): UpstreamClient {
    const client = this.clients.get(upstream.name);
    if (!client) throw new Error(`no client for upstream ${upstream.name}`);
    return client;
  }

  /** Only plain names (local repositories sit beside the default upstream's) and upstreams that take pushes can hold local content. */
  private mayHoldLocal(target: MirrorTarget): boolean {
    return target.addressedBy === 'default' || (target.addressedBy === 'prefix' && target.upstream.allowPush);
  }

  /** Local content under the requested name wins (a pushed override, or a local repository on the default upstream's names). */
  private async tryLocal<T>(target: MirrorTarget, lookup: () => Promise<T>): Promise<T | null> {
    if (!this.mayHoldLocal(target)) return null;
    try {
      return await lookup();
    } catch (error) {
      if (isLocalMiss(error)) return null;
      throw error;
    }
  }

  async manifest(target: MirrorTarget, localName: string, referenceText: string, accepted: Set<string>, via?: string): Promise<ManifestContent> {
    const reference = parseLookupReference(referenceText);
    const local = await this.tryLocal(target, () => this.local.manifests.get(localName, referenceText, accepted));
    if (local) return local;
    const found =
      reference.kind === 'tag' ? await this.manifestByTag(target, reference.tag, via) : await this.manifestByDigest(target, reference.digest, via);
    return negotiateManifest(found, referenceText, reference.kind === 'tag', accepted, (digest) =>
      this.manifestByDigest(target, parseDigest(digest), via),
    );
  }

  /** The upstream's manifest through the cache, without local overrides or negotiation; `revalidate` asks about a tag however fresh it is. */
  cachedManifest(target: MirrorTarget, reference: { tag: string } | { digest: string }, options: { revalidate?: boolean } = {}): Promise<ManifestContent> {
    return 'tag' in reference ? this.manifestByTag(target, reference.tag, undefined, options.revalidate) : this.manifestByDigest(target, parseDigest(reference.digest), undefined);
  }

  private async manifestByDigest(target: MirrorTarget, digest: Digest, via: string | undefined): Promise<ManifestContent> {
    const from = upstreamRepository(target);
    const health = this.client(target.upstream).health;
    const cached = await findMirrorManifest(this.stores.metadata, from, digest.value);
    if (cached) {
      health.counters.cacheHits++;
      return cached;
    }
    health.counters.cacheMisses++;
    return this.manifestFetches.run(`${from.upstream}/${from.repository}@${digest.value}`, async () => {
      const fetched = await this.fetchManifest(target, digest.value, via);
      if (fetched.digest !== digest.value) {
        throw this.unavailable(target, `it answered ${digest.value} with a manifest whose digest is ${fetched.digest}`);
      }
      await insertMirrorManifest(this.stores.metadata, from, fetched);
      return fetched;
    });
  }

  private async manifestByTag(target: MirrorTarget, tag: string, via: string | undefined, revalidate = false): Promise<ManifestContent> {
    const from = upstreamRepository(target);
    const { metadata } = this.stores;
    const cachedTag = await findMirrorTag(metadata, from, tag);
    const cachedManifest = cachedTag ? await findMirrorManifest(metadata, from, cachedTag.digest) : undefined;
    const cached = cachedTag && cachedManifest ? { value: cachedManifest, checkedAt: cachedTag.checkedAt } : undefined;
    const stale = { message: 'served a stale mirrored tag', fields: { tag, digest: cachedManifest?.digest } };
    return this.throughTtlCache(target, this.manifestFetches, `${from.upstream}/${from.repository}:${tag}`, cached, revalidate, stale, async () => {
      try {
        if (cachedManifest) {
          const current = await this.upstreamTagDigest(target, tag, via);
          if (current === cachedManifest.digest) {
            await setMirrorTag(metadata, from, tag, cachedManifest.digest);
            return cachedManifest;
          }
        }
        const fetched = await this.fetchManifest(target, tag, via);
        await metadata.transaction().execute(async (transaction) => {
          await insertMirrorManifest(transaction, from, fetched);
          const before = await setMirrorTag(transaction, from, tag, fetched.digest);
          if (before !== undefined && before !== fetched.digest) {
            this.logger.info({ upstream: from.upstream, repository: from.repository, tag, from: before, to: fetched.digest }, 'mirrored tag moved upstream');
          }
        });
        return fetched;
      } catch (error) {
        if (error instanceof RegistryError && error.code === 'MANIFEST_UNKNOWN') await metadata.transaction().execute((transaction) => deleteMirrorTag(transaction, from, tag));
        throw error;
      }
    });
  }

  /**
   * An answer kept for the upstream's TTL (a tag's manifest, a referrers list): served from cache
   * while fresh; else asked upstream, once however many clients wait; when the upstream cannot answer,
   * the cached answer is served stale and logged.
   */
  private async throughTtlCache<T>(
    target: MirrorTarget,
    flights: SingleFlight<T>,
    key: string,
    cached: { value: T; checkedAt: number } | undefined,
    revalidate: boolean,
    stale: { message: string; fields: Record<string, unknown> },
    askUpstream: () => Promise<T>,
  ): Promise<T> {
    const health = this.client(target.upstream).health;
    if (cached && !revalidate && Date.now() - cached.checkedAt < target.upstream.ttlMs) {
      health.counters.cacheHits++;
      return cached.value;
    }
    health.counters.cacheMisses++;
    return flights.run(key, async () => {
      try {
        return await askUpstream();
      } catch (error) {
        if (!(error instanceof RegistryError && error.code === 'UNAVAILABLE') || !cached) throw error;
        health.counters.staleServed++;
        this.logger.warn({ upstream: target.upstream.name, repository: target.repository, ...stale.fields, reason: error.message }, stale.message);
        return cached.value;
      }
    });
  }

  /** The digest upstream holds for a tag now (HEAD); null when it does not say. */
  private async upstreamTagDigest(target: MirrorTarget, tag: string, via: string | undefined): Promise<string | null> {
    const reply = await this.ask(target, 'HEAD', `${target.repository}/manifests/${tag}`, via, upstreamAccept);
    if (reply.status === 404) throw manifestUnknown(tag, `upstream ${target.upstream.name} has no ${target.repository}:${tag}`);
    return reply.status === 200 ? reply.headers.get('docker-content-digest') : null;
  }

  private async fetchManifest(target: MirrorTarget, reference: string, via: string | undefined): Promise<ManifestContent> {
    const reply = await this.ask(target, 'GET', `${target.repository}/manifests/${reference}`, via, upstreamAccept);
    if (reply.status === 404) {
      reply.body?.destroy();
      throw manifestUnknown(reference, `upstream ${target.upstream.name} has no ${target.repository} manifest ${reference}`);
    }
    if (reply.status !== 200 || !reply.body) {
      reply.body?.destroy();
      throw this.unavailable(target, `it answered ${reply.status} for manifest ${reference}`);
    }
    const payload = await readLimited(reply.body, maxManifestBytes);
    if (!payload) throw this.unavailable(target, `manifest ${reference} is larger than ${maxManifestBytes} bytes`);
    const announcedType = (reply.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    // Some registries send application/json or nothing: the manifest's own mediaType field says then.
    const mediaType = isManifestMediaType(announcedType) ? announcedType : mediaTypeInside(payload, announcedType);
    const digest = digestBytes(payload).value;
    const announced = reply.headers.get('docker-content-digest');
    if (announced && announced !== digest) throw this.unavailable(target, `manifest ${reference} came with digest ${announced} but hashes to ${digest}`);
    this.client(target.upstream).health.counters.bytesFetched += payload.length;
    return { digest, mediaType, size: payload.length, payload };
  }

  /** The referrers of a mirrored digest: local ones when the name holds any, else the upstream's list through the cache. */
  async referrers(target: MirrorTarget, localName: string, digestText: string, artifactType?: string, via?: string): Promise<ReferrersIndex> {
    if (this.mayHoldLocal(target)) {
      const local = await this.local.referrers.list(localName, digestText, artifactType);
      if (local.manifests.length > 0) return local;
    }
    return referrersIndex(await this.referrerDescriptors(target, parseDigest(digestText), via), artifactType);
  }

  /**
   * The referrer manifests of a digest, cached with their list (sync, so that signatures and SBOMs are
   * there offline); none when the upstream has no referrers API (clients then use tags).
   */
  async cacheReferrers(target: MirrorTarget, subject: string): Promise<ManifestContent[]> {
    let descriptors: Descriptor[];
    try {
      descriptors = await this.referrerDescriptors(target, parseDigest(subject), undefined, true);
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'NOT_FOUND') return [];
      throw error;
    }
    const manifests: ManifestContent[] = [];
    for (const descriptor of descriptors) manifests.push(await this.manifestByDigest(target, parseDigest(descriptor.digest), undefined));
    return manifests;
  }

  /** The upstream's referrers list of a digest, kept for the TTL like a tag, and served stale while the upstream is away. */
  private async referrerDescriptors(target: MirrorTarget, subject: Digest, via: string | undefined, revalidate = false): Promise<Descriptor[]> {
    const from = upstreamRepository(target);
    const { metadata } = this.stores;
    const row = await findMirrorReferrers(metadata, from, subject.value);
    const cached = row ? { value: row.descriptors, checkedAt: row.checkedAt } : undefined;
    const stale = { message: 'served stale mirrored referrers', fields: { subject: subject.value } };
    return this.throughTtlCache(target, this.referrerFetches, `${from.upstream}/${from.repository}/referrers/${subject.value}`, cached, revalidate, stale, async () => {
      const reply = await this.ask(target, 'GET', `${target.repository}/referrers/${subject.value}`, via, mediaTypes.ociIndex);
      if (reply.status === 404) {
        reply.body?.destroy();
        await deleteMirrorReferrers(metadata, from, subject.value);
        throw new RegistryError('NOT_FOUND', {
          message: `upstream ${target.upstream.name} offers no referrers API for ${target.repository}; clients fall back to the tag ${subject.algorithm}-${subject.hex}`,
        });
      }
      const body = reply.status === 200 && reply.body ? await readLimited(reply.body, maxManifestBytes) : null;
      if (!body) {
        reply.body?.destroy();
        throw this.unavailable(target, `it answered ${reply.status} for the referrers of ${subject.value}`);
      }
      let descriptors: Descriptor[];
      try {
        descriptors = parseManifest(body, mediaTypes.ociIndex).manifests;
      } catch {
        throw this.unavailable(target, `its referrers of ${subject.value} are not an OCI index`);
      }
      this.client(target.upstream).health.counters.bytesFetched += body.length;
      await setMirrorReferrers(metadata, from, subject.value, descriptors);
      return descriptors;
    });
  }

  /** A page of a mirrored repository's tags: the upstream's list when it answers, else the tags cached from it. */
  async tags(target: MirrorTarget, localName: string, page: { limit?: number; last?: string }): Promise<PageResult> {
    const local = await this.tryLocal(target, () => this.local.listings.tags(localName, page));
    if (local) return local;
    let names: string[];
    try {
      names = await this.upstreamTags(target);
    } catch (error) {
      if (!(error instanceof RegistryError && error.code === 'UNAVAILABLE')) throw error;
      names = await listMirrorTags(this.stores.metadata, upstreamRepository(target));
      if (names.length === 0) throw error;
      this.client(target.upstream).health.counters.staleServed++;
    }
    const sorted = [...new Set(names)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const after = page.last === undefined ? sorted : sorted.filter((name) => Buffer.compare(Buffer.from(name), Buffer.from(page.last!)) > 0);
    const limit = page.limit ?? after.length;
    return { entries: after.slice(0, limit), more: after.length > limit };
  }

  /** Every tag of the upstream repository (its tags/list, page after page). */
  async upstreamTags(target: MirrorTarget): Promise<string[]> {
    const tags: string[] = [];
    let path: string | null = `${target.repository}/tags/list?n=1000`;
    while (path) {
      const reply = await this.ask(target, 'GET', path, undefined);
      if (reply.status === 404) {
        reply.body?.destroy();
        throw new RegistryError('NAME_UNKNOWN', { message: `upstream ${target.upstream.name} has no repository ${target.repository}` });
      }
      const body = reply.body ? await readLimited(reply.body, maxManifestBytes) : null;
      if (reply.status !== 200 || !body) throw this.unavailable(target, `it answered ${reply.status} for the tags of ${target.repository}`);
      const page = JSON.parse(body.toString('utf8')) as { tags?: unknown };
      if (Array.isArray(page.tags)) tags.push(...page.tags.filter((tag): tag is string => typeof tag === 'string'));
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(reply.headers.get('link') ?? '')?.[1];
      const nextUrl = next ? new URL(next, target.upstream.url) : null;
      path = nextUrl && nextUrl.pathname.startsWith('/v2/') ? `${nextUrl.pathname.slice('/v2/'.length)}${nextUrl.search}` : null;
    }
    return tags;
  }

  /** HEAD of a blob: local or cached, else what upstream says of it (without fetching the bytes). */
  async statBlob(target: MirrorTarget, localName: string, digestText: string, via?: string): Promise<BlobDescriptor> {
    const local = await this.tryLocal(target, () => this.local.blobs.stat(localName, digestText));
    if (local) return local;
    const digest = parseDigest(digestText);
    const cached = await findMirrorBlob(this.stores.metadata, upstreamRepository(target), digest.value);
    if (cached) return { digest: digest.value, size: cached.size };
    // Being fetched (its last bytes may be out before its rows are in): the fetch knows the size.
    const fetching = await this.blobFetches.current(this.blobFetchKey(target, digest))?.catch(() => null);
    if (fetching?.size != null) return { digest: digest.value, size: fetching.size };
    const reply = await this.ask(target, 'HEAD', `${target.repository}/blobs/${digest.value}`, via);
    const size = Number(reply.headers.get('content-length'));
    if (reply.status === 200 && Number.isSafeInteger(size)) return { digest: digest.value, size };
    if (reply.status === 404) throw blobUnknownUpstream(target, digest.value);
    throw this.unavailable(target, `it answered ${reply.status} for blob ${digest.value}`);
  }

  /**
   * GET of a blob: local or cached bytes, else a share of the one upstream fetch of it; without
   * `streamWhileFetching` (a range request) the fetch is waited for and the stored bytes answered.
   */
  async openBlob(target: MirrorTarget, localName: string, digestText: string, via?: string, options = { streamWhileFetching: true }): Promise<MirroredBlob> {
    const local = await this.tryLocal(target, () => this.local.blobs.stat(localName, digestText));
    if (local) return { kind: 'stored', blob: local };
    const digest = parseDigest(digestText);
    const health = this.client(target.upstream).health;
    const cached = await findMirrorBlob(this.stores.metadata, upstreamRepository(target), digest.value);
    if (cached) {
      health.counters.cacheHits++;
      health.counters.bytesServed += cached.size;
      return { kind: 'stored', blob: { digest: digest.value, size: cached.size } };
    }
    if (options.streamWhileFetching) {
      const fetch = await this.shareBlobFetch(target, digest, via);
      if (fetch) {
        health.counters.cacheMisses++;
        if (fetch.size !== null) health.counters.bytesServed += fetch.size;
        return { kind: 'fetching', digest: digest.value, size: fetch.size, stream: fetch.subscribe() };
      }
    }
    const { size } = await this.cacheBlob(target, digest.value, via);
    health.counters.bytesServed += size;
    return { kind: 'stored', blob: { digest: digest.value, size } };
  }

  /** Makes sure the blob is in the cache, fetching it (once, however many ask) when it is not. */
  async cacheBlob(target: MirrorTarget, digestText: string, via?: string): Promise<{ fetched: boolean; size: number }> {
    const digest = parseDigest(digestText);
    const from = upstreamRepository(target);
    const health = this.client(target.upstream).health;
    const cached = await findMirrorBlob(this.stores.metadata, from, digest.value);
    if (cached) {
      health.counters.cacheHits++;
      return { fetched: false, size: cached.size };
    }
    health.counters.cacheMisses++;
    const fetch = await this.shareBlobFetch(target, digest, via);
    await fetch?.done.catch((error: unknown) => {
      throw this.unavailable(target, (error as Error).message);
    });
    // Stored now: fetched above, or already here for another repository and linked to this one.
    const stored = await findMirrorBlob(this.stores.metadata, from, digest.value);
    if (!stored) throw blobUnknownUpstream(target, digest.value);
    return { fetched: fetch !== null, size: stored.size };
  }

  private blobFetchKey(target: MirrorTarget, digest: Digest): string {
    return `${target.upstream.name}/${target.repository}@${digest.value}`;
  }

  private shareBlobFetch(target: MirrorTarget, digest: Digest, via: string | undefined): Promise<BlobFetch | null> {
    return this.blobFetches.run(
      this.blobFetchKey(target, digest),
      () => this.startBlobFetch(target, digest, via),
      (started) => started?.done,
    );
  }

  /**
   * Starts the upstream fetch of a blob; null when its bytes are already stored (for another
   * upstream repository) and the upstream confirms this repository has it too: then it is only linked.
   */
  private async startBlobFetch(target: MirrorTarget, digest: Digest, via: string | undefined): Promise<BlobFetch | null> {
    const from = upstreamRepository(target);
    const { storage, metadata } = this.stores;
    const key = storagePaths.blobData(digest);
    const known = await findBlob(metadata, digest.value);
    if (known && (await storage.stat(key))?.size === known.size) {
      const reply = await this.ask(target, 'HEAD', `${target.repository}/blobs/${digest.value}`, via);
      if (reply.status === 404) throw blobUnknownUpstream(target, digest.value);
      if (reply.status !== 200) throw this.unavailable(target, `it answered ${reply.status} for blob ${digest.value}`);
      await linkMirrorBlob(metadata, from, digest.value);
      return null;
    }
    const reply = await this.ask(target, 'GET', `${target.repository}/blobs/${digest.value}`, via);
    if (reply.status === 404) {
      reply.body?.destroy();
      throw blobUnknownUpstream(target, digest.value);
    }
    if (reply.status !== 200) {
      reply.body?.destroy();
      throw this.unavailable(target, `it answered ${reply.status} for blob ${digest.value}`);
    }
    const announced = reply.headers.get('content-length');
    const size = announced !== null && /^\d+$/.test(announced) ? Number(announced) : null;
    const health = this.client(target.upstream).health;
    const fetch = new BlobFetch({
      storage,
      key,
      digest,
      size,
      reply,
      idleTimeoutMs: target.upstream.timeoutMs,
      onCommitted: async (committedSize) => {
        await metadata.transaction().execute(async (transaction) => {
          await insertBlob(transaction, { digest: digest.value, size: committedSize });
          await linkMirrorBlob(transaction, from, digest.value);
        });
        health.counters.bytesFetched += committedSize;
      },
    });
    fetch.done.catch((error: unknown) =>
      this.logger.warn({ upstream: from.upstream, repository: from.repository, digest: digest.value, err: error }, 'mirrored blob fetch failed; nothing cached'),
    );
    return fetch;
  }

  /** One request upstream; an upstream that cannot answer becomes 503 UNAVAILABLE naming it. */
  private async ask(target: MirrorTarget, method: 'GET' | 'HEAD', path: string, via: string | undefined, accept?: string): Promise<UpstreamReply> {
    try {
      return await this.client(target.upstream).request(method, path, { repository: target.repository, via, ...(accept ? { accept } : {}) });
    } catch (error) {
      if (error instanceof UpstreamUnavailableError) throw this.unavailable(target, error.reason, error.retryAfterMs);
      throw error;
    }
  }

  private unavailable(target: MirrorTarget, reason: string, retryAfterMs: number | null = null): RegistryError {
    return new RegistryError('UNAVAILABLE', {
      message: `upstream ${target.upstream.name} (${target.upstream.url}) cannot serve ${target.repository}: ${reason}`,
      detail: { upstream: target.upstream.name, repository: target.repository },
      ...(retryAfterMs !== null ? { headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } } : {}),
    });
  }
}

function blobUnknownUpstream(target: MirrorTarget, digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', {
    message: `upstream ${target.upstream.name} has no blob ${digest} in ${target.repository}`,
    detail: { digest },
  });
}

/** The body whole, or null when it is longer than `limit`. */
async function readLimited(body: Readable, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > limit) {
      body.destroy();
      return null;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A manifest's own mediaType field, for an upstream whose Content-Type is not a manifest type; else what it sent. */
function mediaTypeInside(payload: Buffer, announced: string): string {
  try {
    const parsed = JSON.parse(payload.toString('utf8')) as { mediaType?: unknown };
    if (typeof parsed.mediaType === 'string' && isManifestMediaType(parsed.mediaType)) return parsed.mediaType;
  } catch {
    // not JSON: keep what the upstream said
  }
  return announced !== '' ? announced : 'application/vnd.oci.image.manifest.v1+json';
}
