import type { Readable } from 'node:stream';
import { findBlob } from '../metadata/blobs.js';
import {
  findMirrorReferrers,
  importMirrorTag,
  insertMirrorManifest,
  linkMirrorBlob,
  setMirrorReferrers,
  type ImportedTagOutcome,
  type UpstreamRepository,
} from '../metadata/mirror.js';
import { digestBytes, parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, requireTrueSizes, type Descriptor } from '../oci/manifest.js';
import { isNonDistributableLayer } from '../oci/media-types.js';
import { parseManifestReference } from '../oci/reference.js';
import type { RegistryStores } from '../registry/context.js';
import type { TagLedger } from '../registry/tag-ledger.js';
import { holdsBlob, storeVerifiedBlob } from '../registry/verified-blob.js';
import { systemOrigin, type RequestOrigin } from '../metadata/audit.js';

export interface CachedManifestResult {
  digest: string;
  /** What became of the tag, when the manifest was put by tag. */
  tag?: ImportedTagOutcome;
}

/**
 * Fills an upstream's mirror cache with content carried in from elsewhere (`registry import` of a
 * bundle made at a connected site), so that an offline site serves it by every mirror addressing as
 * if it had been pulled through: blobs are verified as they are stored; a manifest goes in only when
 * every blob it names is held, in one transaction with its blob links, its place among its subject's
 * referrers and its tag (an `imported` tag-history event).
 *
 * Races: two imports of one blob write the same verified bytes (the storage commit is atomic, the
 * rows are inserted if absent); two imports moving one tag are ordered by their transactions, and
 * `importMirrorTag` keeps whichever saw the tag upstream last.
 */
export class MirrorCacheImport {
  constructor(
    private readonly stores: RegistryStores,
    /** The `imported` tag moves go through it. */
    private readonly ledger: TagLedger,
  ) {}

  /** Whether the registry holds the blob's bytes already (they need not be sent again). */
  holdsBlob(digest: string): Promise<boolean> {
    return holdsBlob(this.stores, parseDigest(digest));
  }

  async putBlob(from: UpstreamRepository, digestText: string, size: number | undefined, bytes: Readable): Promise<number> {
    const digest = parseDigest(digestText);
    const stored = await storeVerifiedBlob(this.stores, digest, size, bytes);
    await linkMirrorBlob(this.stores.metadata, from, digest.value, this.stores.clock.now());
    return stored;
  }

  /**
   * Caches a manifest by tag or digest. `seenAt` is when the exporting site last saw the tag upstream:
   * the cached tag counts as checked then (stale once the TTL has passed, and served stale while the
   * upstream cannot be reached). A time past now counts as now: a tag seen "in the future" would
   * never be revalidated, and would keep every later import from moving it.
   */
  async putManifest(
    from: UpstreamRepository,
    referenceText: string,
    payload: Buffer,
    contentType: string | undefined,
    seenAt: number | undefined,
    origin: RequestOrigin | null = null,
  ): Promise<CachedManifestResult> {
    const reference = parseManifestReference(referenceText);
    const digest = digestBytes(payload, reference.kind === 'digest' ? reference.digest.algorithm : 'sha256').value;
    if (reference.kind === 'digest' && reference.digest.value !== digest) {
      throw new RegistryError('DIGEST_INVALID', { message: 'manifest digest does not match the reference', detail: { reference: reference.digest.value, actual: digest } });
    }
    const manifest = parseManifest(payload, contentType);
    const named = manifest.blobs.filter((blob) => !isNonDistributableLayer(blob.mediaType));
    const blobs = named.map((blob) => blob.digest);
    const held = new Map<string, number>();
    for (const blob of blobs) {
      const row = await findBlob(this.stores.metadata, blob);
      if (!row) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: `manifest ${digest} names blob ${blob}, which this registry does not hold`, detail: { digest: blob } });
      }
      held.set(blob, row.size);
    }
    requireTrueSizes(named, held);
    const now = this.stores.clock.now();
    seenAt = Math.min(seenAt ?? now, now);
    const tags = reference.kind === 'tag' ? [reference.tag] : [];
    return this.ledger.change({ repository: from.repository, upstream: from.upstream, tags }, origin ?? systemOrigin('import'), async (change) => {
      const { transaction } = change;
      for (const blob of blobs) await linkMirrorBlob(transaction, from, blob, now);
      await insertMirrorManifest(transaction, from, { digest, mediaType: manifest.mediaType, size: payload.length, payload }, now);
      if (manifest.subject) {
        const referrer: Descriptor = {
          mediaType: manifest.mediaType,
          digest,
          size: payload.length,
          ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}),
          ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
        };
        const listed = await findMirrorReferrers(transaction, from, manifest.subject.digest);
        const descriptors = listed?.descriptors ?? [];
        if (!descriptors.some((descriptor) => descriptor.digest === digest)) {
          await setMirrorReferrers(transaction, from, manifest.subject.digest, [...descriptors, referrer], Math.max(listed?.checkedAt ?? 0, seenAt));
        }
      }
      if (reference.kind === 'digest') return { digest };
      return { digest, tag: await importMirrorTag(transaction, from, reference.tag, digest, seenAt, change.origin, now, change.outbox) };
    });
  }
}
