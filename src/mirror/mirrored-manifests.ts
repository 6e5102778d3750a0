import type { Logger } from 'pino';
import { deleteMirrorTag, findMirrorManifest, findMirrorTag, insertMirrorManifest, setMirrorTag, touchMirrorManifest, type UpstreamRepository } from '../metadata/mirror.js';
import { digestBytes, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { maxManifestBytes } from '../oci/manifest.js';
import { isManifestMediaType, manifestMediaTypes } from '../oci/media-types.js';
import type { RegistryStores } from '../registry/context.js';
import type { TagChange, TagLedger } from '../registry/tag-ledger.js';
import { systemOrigin } from '../metadata/audit.js';
import { manifestUnknown, type ManifestContent } from '../registry/manifest-negotiation.js';
import type { MirrorTarget } from './addressing.js';
import { SingleFlight } from './single-flight.js';
import { TtlCache } from './ttl-cache.js';
import { readLimited, upstreamRepository, type Upstreams } from './upstreams.js';

/** Refreshes from the upstream are the registry's own doing. */
const mirrorOrigin = systemOrigin('mirror');

/** Accept header for upstream manifest requests: every type the registry can store and serve. */
const upstreamAccept = manifestMediaTypes.join(', ');

/**
 * Upstream manifests through the cache. By digest they never change: once cached, no upstream
 * request. By tag: fresh for the TTL, then one HEAD asks for the tag's digest and only a moved tag
 * is fetched again, its move recorded (tag history) in the transaction that changes the cached tag.
 */
export class MirroredManifests {
  private readonly digestFetches = new SingleFlight<ManifestContent>();
  private readonly tags: TtlCache<ManifestContent>;

  constructor(
    private readonly stores: RegistryStores,
    private readonly upstreams: Upstreams,
    private readonly ledger: TagLedger,
    private readonly logger: Logger,
  ) {
    this.tags = new TtlCache(upstreams, logger, 'served a stale mirrored tag');
  }

  async byDigest(target: MirrorTarget, digest: Digest, via: string | undefined): Promise<ManifestContent> {
    const from = upstreamRepository(target);
    const health = this.upstreams.health(target);
    const cached = await findMirrorManifest(this.stores.metadata, from, digest.value);
    if (cached) {
      health.cacheHit();
      await touchMirrorManifest(this.stores.metadata, from, digest.value, this.stores.clock.now());
      return cached;
    }
    health.cacheMiss();
    return this.digestFetches.run(`${from.upstream}/${from.repository}@${digest.value}`, async () => {
      const fetched = await this.fetch(target, digest.value, via);
      if (fetched.digest !== digest.value) {
        throw this.upstreams.unavailable(target, `it answered ${digest.value} with a manifest whose digest is ${fetched.digest}`);
      }
      await insertMirrorManifest(this.stores.metadata, from, fetched, this.stores.clock.now());
      return fetched;
    });
  }

  /** `revalidate` asks the upstream however fresh the cached tag is (mirror sync). The use is recorded (cache eviction). */
  async byTag(target: MirrorTarget, tag: string, via: string | undefined, revalidate = false): Promise<ManifestContent> {
    const manifest = await this.throughTag(target, tag, via, revalidate);
    await touchMirrorManifest(this.stores.metadata, upstreamRepository(target), manifest.digest, this.stores.clock.now());
    return manifest;
  }

  private async throughTag(target: MirrorTarget, tag: string, via: string | undefined, revalidate: boolean): Promise<ManifestContent> {
    const from = upstreamRepository(target);
    const { metadata } = this.stores;
    const cachedTag = await findMirrorTag(metadata, from, tag);
    const cachedManifest = cachedTag ? await findMirrorManifest(metadata, from, cachedTag.digest) : undefined;
    const cached = cachedTag && cachedManifest ? { value: cachedManifest, checkedAt: cachedTag.checkedAt } : undefined;
    const logFields = { tag, digest: cachedManifest?.digest };
    return this.tags.serve(target, `${from.upstream}/${from.repository}:${tag}`, cached, { revalidate, logFields }, async () => {
      try {
        if (cachedManifest) {
          const current = await this.upstreamTagDigest(target, tag, via);
          if (current === cachedManifest.digest) {
            await this.moveTag(from, tag, (change) => setMirrorTag(change.transaction, from, tag, cachedManifest.digest, change.now, change.outbox));
            return cachedManifest;
          }
        }
        const fetched = await this.fetch(target, tag, via);
        await this.moveTag(from, tag, async (change) => {
          await insertMirrorManifest(change.transaction, from, fetched, change.now);
          const before = await setMirrorTag(change.transaction, from, tag, fetched.digest, change.now, change.outbox);
          if (before !== undefined && before !== fetched.digest) {
            this.logger.info({ upstream: from.upstream, repository: from.repository, tag, from: before, to: fetched.digest }, 'mirrored tag moved upstream');
          }
        });
        return fetched;
      } catch (error) {
        if (error instanceof RegistryError && error.code === 'MANIFEST_UNKNOWN') await this.moveTag(from, tag, (change) => deleteMirrorTag(change.transaction, from, tag, change.now, change.outbox));
        throw error;
      }
    });
  }

  /** A change of the cached tag, as the upstream answered: through the tag ledger, by the mirror itself. */
  private moveTag(from: UpstreamRepository, tag: string, work: (change: TagChange) => Promise<unknown>): Promise<unknown> {
    return this.ledger.change({ repository: from.repository, upstream: from.upstream, tags: [tag] }, mirrorOrigin, work);
  }

  /** The digest upstream holds for a tag now (HEAD); null when it does not say. */
  private async upstreamTagDigest(target: MirrorTarget, tag: string, via: string | undefined): Promise<string | null> {
    const reply = await this.upstreams.ask(target, 'HEAD', `${target.repository}/manifests/${tag}`, via, upstreamAccept);
    if (reply.status === 404) throw manifestUnknown(tag, `upstream ${target.upstream.name} has no ${target.repository}:${tag}`);
    return reply.status === 200 ? reply.headers.get('docker-content-digest') : null;
  }

  private async fetch(target: MirrorTarget, reference: string, via: string | undefined): Promise<ManifestContent> {
    const reply = await this.upstreams.ask(target, 'GET', `${target.repository}/manifests/${reference}`, via, upstreamAccept);
    if (reply.status === 404) {
      reply.body?.discard();
      throw manifestUnknown(reference, `upstream ${target.upstream.name} has no ${target.repository} manifest ${reference}`);
    }
    if (reply.status !== 200 || !reply.body) {
      reply.body?.discard();
      throw this.upstreams.unavailable(target, `it answered ${reply.status} for manifest ${reference}`);
    }
    const payload = await readLimited(reply.body, maxManifestBytes);
    if (!payload) throw this.upstreams.unavailable(target, `manifest ${reference} is larger than ${maxManifestBytes} bytes`);
    const announcedType = (reply.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    // Some registries send application/json or nothing: the manifest's own mediaType field says then.
    const mediaType = isManifestMediaType(announcedType) ? announcedType : mediaTypeInside(payload, announcedType);
    const digest = digestBytes(payload).value;
    const announced = reply.headers.get('docker-content-digest');
    if (announced && announced !== digest) throw this.upstreams.unavailable(target, `manifest ${reference} came with digest ${announced} but hashes to ${digest}`);
    this.upstreams.health(target).counters.bytesFetched += payload.length;
    return { digest, mediaType, size: payload.length, payload };
  }
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
