import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { parseDigest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { isNonDistributableLayer } from '../oci/media-types.js';
import { validateRepositoryName } from '../oci/names.js';
import { blobEntryName, parseImageReference, refNameAnnotation, repositoryAnnotation } from './layout.js';
import { listTarEntries, readTarEntry, readTarEntryBytes, type TarEntry } from './tar.js';

/** Where an import writes: this registry's stores, or a running registry over HTTP. */
export interface ImportTarget {
  /** Whether the repository holds the blob already (or could be given it without its bytes). */
  hasBlob(repository: string, digest: string): Promise<boolean>;
  putBlob(repository: string, digest: string, size: number, bytes: () => Readable): Promise<void>;
  /** Stores a manifest by tag or digest; answers its digest. */
  putManifest(repository: string, reference: string, payload: Buffer, mediaType: string): Promise<string>;
}

export interface ImportSummary {
  /** Tagged images (referrers and untagged entries come along without counting). */
  images: number;
  manifests: number;
  blobs: number;
  /** Blobs the target had already. */
  skipped: number;
  bytes: number;
}

export class ImportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportError';
  }
}

interface ManifestToPut {
  digest: string;
  mediaType: string;
  payload: Buffer;
  /** Tag to put it by; by digest when absent. */
  tag?: string;
}

interface RepositoryPlan {
  blobs: Map<string, number>;
  /** In order: what a manifest names comes before it. */
  manifests: ManifestToPut[];
}

/** The repository and tag an index.json entry names: our annotation, else a `NAME:TAG` ref name. */
function destinationOf(annotations: Record<string, string> | undefined, fallbackRepository: string | undefined): { repository: string; tag?: string } | null {
  const refName = annotations?.[refNameAnnotation];
  const repository = annotations?.[repositoryAnnotation];
  if (refName) {
    try {
      const parsed = parseImageReference(refName);
      return parsed.tag !== undefined ? { repository: repository ?? parsed.repository, tag: parsed.tag } : { repository: repository ?? parsed.repository };
    } catch {
      // A ref name that is a bare tag (skopeo's oci-archive:FILE:TAG): the repository must come from elsewhere.
      const target = repository ?? fallbackRepository;
      if (target && /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/.test(refName)) return { repository: validateRepositoryName(target), tag: refName };
    }
  }
  if (repository) return { repository: validateRepositoryName(repository) };
  return fallbackRepository ? { repository: validateRepositoryName(fallbackRepository) } : null;
}

/**
 * Loads an OCI image layout archive (ours from `registry export`, or one skopeo wrote) into a
 * target: per repository, its blobs (each verified against its digest), then its manifests, children
 * and subjects before what names them, then the tags. Digests are preserved exactly.
 */
export async function importArchive(
  file: string,
  target: ImportTarget,
  options: { repository?: string; onProgress?: (done: number, total: number) => void } = {},
): Promise<ImportSummary> {
  const handle = await open(file, 'r');
  try {
    const entries = new Map<string, TarEntry>();
    for (const entry of await listTarEntries(handle)) if (entry.type === 'file') entries.set(entry.name, entry);
    const layoutEntry = entries.get('oci-layout');
    const indexEntry = entries.get('index.json');
    if (!layoutEntry || !indexEntry) throw new ImportError(`${file} is not an OCI image layout archive (no oci-layout or index.json)`);
    const layout = JSON.parse((await readTarEntryBytes(handle, layoutEntry)).toString('utf8')) as { imageLayoutVersion?: unknown };
    if (typeof layout.imageLayoutVersion !== 'string' || !layout.imageLayoutVersion.startsWith('1.')) {
      throw new ImportError(`${file}: unsupported image layout version ${JSON.stringify(layout.imageLayoutVersion)}`);
    }
    const index = JSON.parse((await readTarEntryBytes(handle, indexEntry)).toString('utf8')) as {
      manifests?: Array<{ mediaType: string; digest: string; annotations?: Record<string, string> }>;
    };

    const blobEntry = (digest: string): TarEntry => {
      const entry = entries.get(blobEntryName(digest));
      if (!entry) throw new ImportError(`${file} lacks blob ${digest}`);
      return entry;
    };
    const plans = new Map<string, RepositoryPlan>();
    const planFor = (repository: string): RepositoryPlan => {
      let plan = plans.get(repository);
      if (!plan) plans.set(repository, (plan = { blobs: new Map(), manifests: [] }));
      return plan;
    };

    const addManifest = async (plan: RepositoryPlan, digest: string, mediaType: string, tag: string | undefined): Promise<void> => {
      const already = plan.manifests.find((manifest) => manifest.digest === digest);
      if (already && tag === undefined) return;
      const payload = await readTarEntryBytes(handle, blobEntry(digest));
      if (!already) {
        const parsed = parseManifest(payload, mediaType);
        for (const blob of parsed.blobs) {
          if (isNonDistributableLayer(blob.mediaType)) continue;
          plan.blobs.set(blob.digest, blobEntry(blob.digest).size);
        }
        for (const child of parsed.manifests) await addManifest(plan, child.digest, child.mediaType, undefined);
        if (parsed.subject && entries.has(blobEntryName(parsed.subject.digest))) {
          await addManifest(plan, parsed.subject.digest, parsed.subject.mediaType, undefined);
        }
      }
      plan.manifests.push({ digest, mediaType, payload, ...(tag !== undefined ? { tag } : {}) });
    };

    let images = 0;
    for (const descriptor of index.manifests ?? []) {
      const destination = destinationOf(descriptor.annotations, options.repository);
      if (!destination) {
        throw new ImportError(`index.json entry ${descriptor.digest} names no repository (ref name ${JSON.stringify(descriptor.annotations?.[refNameAnnotation] ?? null)}); name one with --repository`);
      }
      parseDigest(descriptor.digest);
      await addManifest(planFor(destination.repository), descriptor.digest, descriptor.mediaType, destination.tag);
      if (destination.tag !== undefined) images++;
    }

    const total = [...plans.values()].reduce((sum, plan) => sum + [...plan.blobs.values()].reduce((a, b) => a + b, 0), 0);
    let done = 0;
    const summary: ImportSummary = { images, manifests: 0, blobs: 0, skipped: 0, bytes: 0 };
    for (const [repository, plan] of plans) {
      for (const [digest, size] of plan.blobs) {
        if (await target.hasBlob(repository, digest)) {
          summary.skipped++;
        } else {
          await target.putBlob(repository, digest, size, () => readTarEntry(file, blobEntry(digest)));
          summary.blobs++;
          summary.bytes += size;
        }
        done += size;
        options.onProgress?.(done, total);
      }
      const put = new Set<string>();
      for (const manifest of plan.manifests) {
        if (manifest.tag === undefined && put.has(manifest.digest)) continue;
        const digest = await target.putManifest(repository, manifest.tag ?? manifest.digest, manifest.payload, manifest.mediaType);
        if (digest !== manifest.digest) throw new ImportError(`${repository}: manifest ${manifest.digest} was stored as ${digest}`);
        if (!put.has(manifest.digest)) summary.manifests++;
        put.add(manifest.digest);
      }
    }
    options.onProgress?.(total, total);
    return summary;
  } finally {
    await handle.close();
  }
}
