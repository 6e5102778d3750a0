import type { Writable } from 'node:stream';
import type { MirrorAddressing } from '../mirror/addressing.js';
import { parseManifest } from '../oci/manifest.js';
import { isNonDistributableLayer } from '../oci/media-types.js';
import type { RegistryStores } from '../registry/context.js';
import type { ManifestContent } from '../registry/manifest-negotiation.js';
import { blobEntryName, formatImageReference, parseImageReference, refNameAnnotation, repositoryAnnotation } from './layout.js';
import { contentSourceFor, openBlobBytes, type ContentSource } from './sources.js';
import { TarWriter } from './tar.js';

export interface ExportSummary {
  images: number;
  manifests: number;
  blobs: number;
  bytes: number;
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

/**
 * Writes images (every platform of an index, and the referrers of each manifest) as an OCI image
 * layout in a tar archive, named `NAME:TAG` in index.json, as `skopeo copy oci-archive:FILE:NAME:TAG`
 * reads it. Bytes are copied from storage as they are: digests stay exactly the same.
 */
export async function exportImages(
  stores: RegistryStores,
  addressing: MirrorAddressing | null,
  references: string[],
  out: Writable,
  onProgress: (done: number, total: number) => void = () => {},
): Promise<ExportSummary> {
  const manifests = new Map<string, ManifestContent>();
  const blobs = new Map<string, number>();
  const index: IndexEntry[] = [];

  const visit = async (source: ContentSource, repository: string, manifest: ManifestContent): Promise<void> => {
    if (manifests.has(manifest.digest)) return;
    manifests.set(manifest.digest, manifest);
    const parsed = parseManifest(Buffer.from(manifest.payload), manifest.mediaType);
    for (const blob of parsed.blobs) {
      if (isNonDistributableLayer(blob.mediaType)) continue;
      const size = await source.blobSize(blob.digest);
      if (size === undefined) throw new ExportError(`${source.description} does not hold blob ${blob.digest} of manifest ${manifest.digest}`);
      blobs.set(blob.digest, size);
    }
    for (const child of parsed.manifests) {
      const found = await source.manifest({ digest: child.digest });
      if (!found) throw new ExportError(`${source.description} does not hold manifest ${child.digest}, named by index ${manifest.digest}`);
      await visit(source, repository, found);
    }
    for (const referrer of await source.referrers(manifest.digest)) {
      if (manifests.has(referrer.digest)) continue;
      index.push({ mediaType: referrer.mediaType, digest: referrer.digest, size: referrer.size, annotations: { [repositoryAnnotation]: repository } });
      await visit(source, repository, referrer);
    }
  };

  for (const text of references) {
    const reference = parseImageReference(text);
    const source = contentSourceFor(stores, addressing, reference.repository);
    const manifest = await source.manifest(reference.tag !== undefined ? { tag: reference.tag } : { digest: reference.digest });
    if (!manifest) throw new ExportError(`${formatImageReference(reference)}: not in the ${source.description}`);
    index.push({
      mediaType: manifest.mediaType,
      digest: manifest.digest,
      size: manifest.size,
      annotations: {
        [repositoryAnnotation]: reference.repository,
        ...(reference.tag !== undefined ? { [refNameAnnotation]: formatImageReference(reference) } : {}),
      },
    });
    await visit(source, reference.repository, manifest);
  }

  const total = [...blobs.values()].reduce((sum, size) => sum + size, 0) + [...manifests.values()].reduce((sum, manifest) => sum + manifest.size, 0);
  let done = 0;
  const tar = new TarWriter(out);
  await tar.file('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  await tar.directory('blobs');
  await tar.directory('blobs/sha256');
  for (const [digest, size] of blobs) {
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
  await tar.finish();
  onProgress(total, total);
  return { images: references.length, manifests: manifests.size, blobs: blobs.size, bytes: total };
}
