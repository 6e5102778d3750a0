import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';
import { listCachedManifests, listCachedTags } from '../metadata/mirror.js';
import type { MirrorAddressing } from '../mirror/addressing.js';
import type { UpstreamSettings } from '../mirror/settings.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest } from '../oci/manifest.js';
import { isIndexMediaType, isNonDistributableLayer } from '../oci/media-types.js';
import type { RegistryStores } from '../registry/context.js';
import type { ManifestContent } from '../registry/manifest-negotiation.js';
import {
  blobEntryName,
  bundleDescriptionName,
  formatImageReference,
  parseImageReference,
  refNameAnnotation,
  repositoryAnnotation,
  tagSeenAnnotation,
  upstreamAnnotation,
  upstreamRepositoryAnnotation,
  type BundleDescription,
  type ImageReference,
} from './layout.js';
import { contentSourceFor, openBlobBytes, type ContentSource } from './sources.js';
import { TarWriter } from './tar.js';

export interface ExportRequest {
  /** `NAME:TAG` or `NAME@DIGEST`, named as clients pull them (mirrored names come from the mirror cache). */
  references: string[];
  /** Every image cached from these upstreams (`--all-mirrored`); images whose layers were never fetched are skipped. */
  allMirrored?: UpstreamSettings[];
  /** A previous bundle: the blobs it carried (or left out in turn) are left out of this one. */
  since?: { description: BundleDescription; carried: Set<string> };
  /** Why a repository name holds nothing, when more can be said than "not there" (a mirrored name without its configuration). */
  explainMissing?: (repository: string) => Promise<string | undefined>;
}

/** What the bundle holds, counted as import and sync count (see cli/report.ts), and what was written. */
export interface ExportSummary {
  images: number;
  manifests: number;
  blobs: number;
  bytes: number;
  /** Blobs of the bundle's images that the previous bundle carried, so left out. */
  blobsLeftOut: number;
  bytesLeftOut: number;
  /** Cached images `--all-mirrored` could not export, and why. */
  skipped: Array<{ image: string; reason: string }>;
  bundle: BundleDescription;
}

interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

export class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportError';
  }
}

/** What one image adds to the bundle; merged only once all of it was found. */
interface ImageContent {
  manifests: Map<string, ManifestContent>;
  blobs: Map<string, number>;
  entries: IndexEntry[];
}

/**
 * Writes images (every platform of an index, and the referrers of each manifest) as an OCI image
 * layout in a tar archive, named `NAME:TAG` in index.json, as `skopeo copy oci-archive:FILE:NAME:TAG`
 * reads it. Each entry says where it came from: the repository as exported, and for mirrored images
 * the upstream and its repository, and when the tag was last seen there. Bytes are copied from
 * storage as they are: digests stay exactly the same.
 */
export async function exportImages(
  stores: RegistryStores,
  addressing: MirrorAddressing | null,
  request: ExportRequest,
  out: Writable,
  onProgress: (done: number, total: number) => void = () => {},
): Promise<ExportSummary> {
  const manifests = new Map<string, ManifestContent>();
  const blobs = new Map<string, number>();
  const index: IndexEntry[] = [];
  const skipped: ExportSummary['skipped'] = [];
  /** Manifests an image was skipped for: not tried again by digest. */
  const incomplete = new Set<string>();
  let images = 0;

  const provenanceOf = (source: ContentSource): Record<string, string> =>
    source.upstream ? { [upstreamAnnotation]: source.upstream.upstream, [upstreamRepositoryAnnotation]: source.upstream.repository } : {};

  /** Everything a manifest brings that the bundle does not hold yet; throws when the source lacks a part. */
  const collect = async (source: ContentSource, name: string, manifest: ManifestContent, into: ImageContent): Promise<void> => {
    if (manifests.has(manifest.digest) || into.manifests.has(manifest.digest)) return;
    into.manifests.set(manifest.digest, manifest);
    const parsed = parseManifest(Buffer.from(manifest.payload), manifest.mediaType);
    for (const blob of parsed.blobs) {
      if (isNonDistributableLayer(blob.mediaType)) continue;
      const size = await source.blobSize(blob.digest);
      if (size === undefined) throw new ExportError(`${source.description} does not hold blob ${blob.digest} of manifest ${manifest.digest}`);
      into.blobs.set(blob.digest, size);
    }
    for (const child of parsed.manifests) {
      const found = await source.manifest({ digest: child.digest });
      // A mirror cache may hold some platforms of an index only (mirror sync --platforms): those go.
      if (!found && source.upstream) continue;
      if (!found) throw new ExportError(`${source.description} does not hold manifest ${child.digest}, named by index ${manifest.digest}`);
      await collect(source, name, found, into);
    }
    for (const referrer of await source.referrers(manifest.digest)) {
      if (manifests.has(referrer.digest) || into.manifests.has(referrer.digest)) continue;
      into.entries.push({ mediaType: referrer.mediaType, digest: referrer.digest, size: referrer.size, annotations: { [repositoryAnnotation]: name, ...provenanceOf(source) } });
      await collect(source, name, referrer, into);
    }
  };

  /** Adds one image, or when `tolerant` skips it (keeping why) if any part of it is missing or not served. */
  const addImage = async (reference: ImageReference, tolerant: boolean): Promise<void> => {
    const label = formatImageReference(reference);
    const image: ImageContent = { manifests: new Map(), blobs: new Map(), entries: [] };
    let found: { source: ContentSource; manifest: ManifestContent };
    try {
      found = await collectImage(reference, label, image);
    } catch (error) {
      if (!tolerant || !(error instanceof ExportError || error instanceof RegistryError)) throw error;
      skipped.push({ image: label, reason: error.message });
      for (const digest of image.manifests.keys()) incomplete.add(digest);
      return;
    }
    const { source, manifest } = found;
    const seen = reference.tag !== undefined ? await source.tagSeenAt(reference.tag) : undefined;
    index.push({
      mediaType: manifest.mediaType,
      digest: manifest.digest,
      size: manifest.size,
      annotations: {
        [repositoryAnnotation]: reference.repository,
        ...(reference.tag !== undefined ? { [refNameAnnotation]: label } : {}),
        ...provenanceOf(source),
        ...(seen !== undefined ? { [tagSeenAnnotation]: new Date(seen).toISOString() } : {}),
      },
    });
    index.push(...image.entries);
    for (const [digest, content] of image.manifests) manifests.set(digest, content);
    for (const [digest, size] of image.blobs) blobs.set(digest, size);
    images++;
  };

  const collectImage = async (reference: ImageReference, label: string, into: ImageContent) => {
    const source = contentSourceFor(stores, addressing, reference.repository);
    const manifest = await source.manifest(reference.tag !== undefined ? { tag: reference.tag } : { digest: reference.digest });
    if (!manifest) {
      const why = (await request.explainMissing?.(reference.repository)) ?? '';
      throw new ExportError(`${label}: not in the ${source.description}${why ? `. ${why}` : ''}`);
    }
    await collect(source, reference.repository, manifest, into);
    return { source, manifest };
  };

  for (const text of request.references) {
    let reference: ImageReference;
    try {
      reference = parseImageReference(text);
    } catch (error) {
      throw new ExportError((error as Error).message);
    }
    await addImage(reference, false);
  }
  for (const upstream of request.allMirrored ?? []) {
    for (const tag of await listCachedTags(stores.metadata, upstream.name)) {
      await addImage({ repository: `${upstream.prefix}/${tag.repository}`, tag: tag.tag }, true);
    }
    // Manifests cached by digest alone (pulled as NAME@DIGEST), indexes before what they may name.
    const rest = (await listCachedManifests(stores.metadata, upstream.name)).filter((row) => !manifests.has(row.digest) && !incomplete.has(row.digest));
    rest.sort((a, b) => Number(isIndexMediaType(b.mediaType)) - Number(isIndexMediaType(a.mediaType)));
    for (const row of rest) {
      if (!manifests.has(row.digest) && !incomplete.has(row.digest)) await addImage({ repository: `${upstream.prefix}/${row.repository}`, digest: row.digest }, true);
    }
  }

  const carried = request.since?.carried ?? new Set<string>();
  const leftOut = [...blobs.keys()].filter((digest) => carried.has(digest));
  const bytes = [...blobs.values()].reduce((sum, size) => sum + size, 0);
  const bytesLeftOut = leftOut.reduce((sum, digest) => sum + (blobs.get(digest) ?? 0), 0);
  const bundle: BundleDescription = {
    id: randomUUID(),
    created: new Date(stores.clock.now()).toISOString(),
    since: request.since ? { id: request.since.description.id, created: request.since.description.created } : null,
    leftOut,
  };

  const total = bytes - bytesLeftOut + [...manifests.values()].reduce((sum, manifest) => sum + manifest.size, 0);
  let done = 0;
  const tar = new TarWriter(out);
  await tar.file('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  await tar.directory('blobs');
  await tar.directory('blobs/sha256');
  for (const [digest, size] of blobs) {
    if (carried.has(digest)) continue;
    await tar.streamedFile(blobEntryName(digest), size, await openBlobBytes(stores, digest), (count) => {
      done += count;
      onProgress(done, total);
    });
  }
  for (const manifest of manifests.values()) {
    await tar.file(blobEntryName(manifest.digest), Buffer.from(manifest.payload));
    done += manifest.size;
    onProgress(done, total);
  }
  await tar.file('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index })));
  await tar.file(bundleDescriptionName, Buffer.from(JSON.stringify(bundle)));
  await tar.finish();
  onProgress(total, total);
  return { images, manifests: manifests.size, blobs: blobs.size, bytes, blobsLeftOut: leftOut.length, bytesLeftOut, skipped, bundle };
}
