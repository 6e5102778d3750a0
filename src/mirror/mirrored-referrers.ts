import type { Logger } from 'pino';
import { deleteMirrorReferrers, findMirrorReferrers, setMirrorReferrers } from '../metadata/mirror.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { maxManifestBytes, parseManifest, type Descriptor } from '../oci/manifest.js';
import { mediaTypes } from '../oci/media-types.js';
import type { RegistryStores } from '../registry/context.js';
import type { ManifestContent } from '../registry/manifest-negotiation.js';
import type { MirrorTarget } from './addressing.js';
import type { MirroredManifests } from './mirrored-manifests.js';
import { TtlCache } from './ttl-cache.js';
import { readLimited, upstreamRepository, type Upstreams } from './upstreams.js';

/**
 * The upstream's referrers of a digest (signatures, SBOMs…), kept for the TTL like a tag and served
 * stale while the upstream is away; none (NOT_FOUND) when the upstream has no referrers API.
 */
export class MirroredReferrers {
  private readonly lists: TtlCache<Descriptor[]>;

  constructor(
    private readonly stores: RegistryStores,
    private readonly upstreams: Upstreams,
    private readonly manifests: MirroredManifests,
    logger: Logger,
  ) {
    this.lists = new TtlCache(upstreams, logger, 'served stale mirrored referrers');
  }

  async descriptors(target: MirrorTarget, subject: Digest, via: string | undefined, revalidate = false): Promise<Descriptor[]> {
    const from = upstreamRepository(target);
    const { metadata } = this.stores;
    const row = await findMirrorReferrers(metadata, from, subject.value);
    const cached = row ? { value: row.descriptors, checkedAt: row.checkedAt } : undefined;
    const key = `${from.upstream}/${from.repository}/referrers/${subject.value}`;
    return this.lists.serve(target, key, cached, { revalidate, logFields: { subject: subject.value } }, async () => {
      const reply = await this.upstreams.ask(target, 'GET', `${target.repository}/referrers/${subject.value}`, via, mediaTypes.ociIndex);
      if (reply.status === 404) {
        reply.body?.discard();
        await deleteMirrorReferrers(metadata, from, subject.value);
        throw new RegistryError('NOT_FOUND', {
          message: `upstream ${target.upstream.name} offers no referrers API for ${target.repository}; clients fall back to the tag ${subject.algorithm}-${subject.hex}`,
        });
      }
      const body = reply.status === 200 && reply.body ? await readLimited(reply.body, maxManifestBytes) : null;
      if (!body) {
        reply.body?.discard();
        throw this.upstreams.unavailable(target, `it answered ${reply.status} for the referrers of ${subject.value}`);
      }
      let descriptors: Descriptor[];
      try {
        descriptors = parseManifest(body, mediaTypes.ociIndex).manifests;
      } catch {
        throw this.upstreams.unavailable(target, `its referrers of ${subject.value} are not an OCI index`);
      }
      this.upstreams.health(target).counters.bytesFetched += body.length;
      await setMirrorReferrers(metadata, from, subject.value, descriptors, this.stores.clock.now());
      return descriptors;
    });
  }

  /** The referrer manifests of a digest, cached with their list (mirror sync, so that they are there offline). */
  async cache(target: MirrorTarget, subject: string): Promise<ManifestContent[]> {
    let descriptors: Descriptor[];
    try {
      descriptors = await this.descriptors(target, parseDigest(subject), undefined, true);
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'NOT_FOUND') return [];
      throw error;
    }
    const manifests: ManifestContent[] = [];
    for (const descriptor of descriptors) manifests.push(await this.manifests.byDigest(target, parseDigest(descriptor.digest), undefined));
    return manifests;
  }
}
