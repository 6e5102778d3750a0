import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ImportedTagOutcome } from '../metadata/mirror.js';
import { digestBytes, digestOf, newHash, parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { maxManifestBytes, parseManifest } from '../oci/manifest.js';
import { isNonDistributableLayer } from '../oci/media-types.js';
import { isValidTag, validateRepositoryName } from '../oci/names.js';
import {
  blobEntryName,
  bundleDescriptionName,
  parseBundleDescription,
  parseImageReference,
  refNameAnnotation,
  repositoryAnnotation,
  tagSeenAnnotation,
  upstreamAnnotation,
  upstreamRepositoryAnnotation,
  type BundleDescription,
} from './layout.js';
import { listTarEntries, readTarEntry, readTarEntryBytes, TarFormatError, type TarEntry } from './tar.js';

/** Where content of a bundle goes: a local repository, or the mirror cache of an upstream repository. */
export type ImportDestination = { kind: 'local'; repository: string } | { kind: 'mirror'; upstream: string; repository: string };

export function describeDestination(destination: ImportDestination): string {
  return destination.kind === 'local' ? `local repository ${destination.repository}` : `mirror cache of ${destination.upstream}/${destination.repository}`;
}

/** Where an import writes: this registry's stores, or a running registry over HTTP. */
export interface ImportTarget {
  /** Why the target cannot take content for this destination (say, an upstream it does not name), or null. */
  refusal(destination: ImportDestination): Promise<string | null>;
  /** Whether the destination could use the blob without its bytes; changes nothing. */
  holdsBlob(destination: ImportDestination, digest: string): Promise<boolean>;
  /** Whether the destination has the blob now, given to it (linked, mounted) when the registry holds it elsewhere. */
  useExistingBlob(destination: ImportDestination, digest: string): Promise<boolean>;
  putBlob(destination: ImportDestination, digest: string, size: number, bytes: () => Readable): Promise<void>;
  /** Stores a manifest by tag or digest; `seenAt` is when a mirrored tag was last seen upstream (the time of the import, when the bundle does not say). */
  putManifest(destination: ImportDestination, reference: string, payload: Buffer, mediaType: string, seenAt: number | undefined): Promise<{ digest: string; tag?: ImportedTagOutcome }>;
}

/** What the bundle holds, counted as export and sync count (see cli/report.ts), and what became of it. */
export interface ImportSummary {
  /** Entries with a tag (referrers and untagged entries come along without counting). */
  images: number;
  manifests: number;
  blobs: number;
  bytes: number;
  /** Of the blobs: those whose bytes were stored now, and those the registry held already. */
  blobsStored: number;
  bytesStored: number;
  blobsPresent: number;
  /** Mirrored tags: new to the cache, moved, as they were, or kept because the cache saw them upstream later. */
  tags: Record<ImportedTagOutcome, number>;
  /** The bundle's own description, when it is one of ours. */
  bundle: BundleDescription | null;
}

export class ImportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportError';
  }
}

export interface ImportOptions {
  /** The repository for entries that name none (a skopeo archive written as oci-archive:FILE:TAG). */
  repository?: string;
  /** Mirrored images go into local repositories under the names they were exported with. */
  asLocal?: boolean;
  onProgress?: (done: number, total: number) => void;
}

interface ManifestToPut {
  digest: string;
  mediaType: string;
  payload: Buffer;
  /** Tag to put it by; by digest when absent. */
  tag?: string;
  seenAt: number | undefined;
}

interface DestinationPlan {
  destination: ImportDestination;
  /** Images of this destination, as the bundle names them, for messages. */
  names: Set<string>;
  blobs: Map<string, number>;
  /** Blobs an incremental bundle left out (with their sizes): the target must hold them already. */
  leftOut: Map<string, number>;
  /** In order: what a manifest names comes before it. */
  manifests: ManifestToPut[];
}

interface EntryDestination {
  destination: ImportDestination;
  /** The name the entry was exported as (or the local repository). */
  name: string;
  tag?: string;
}

/** Where an index.json entry goes: a mirror cache per our annotations (unless --as-local), else a local repository. */
function destinationOf(annotations: Record<string, string> | undefined, options: ImportOptions): EntryDestination | null {
  const refName = annotations?.[refNameAnnotation];
  const exportedAs = annotations?.[repositoryAnnotation];
  let repository = exportedAs;
  let tag: string | undefined;
  if (refName) {
    try {
      const parsed = parseImageReference(refName);
      repository ??= parsed.repository;
      tag = parsed.tag;
    } catch {
      // A ref name that is a bare tag (skopeo's oci-archive:FILE:TAG): the repository must come from elsewhere.
      if (isValidTag(refName)) tag = refName;
    }
  }
  repository ??= options.repository;
  if (!repository) return null;
  const name = validateRepositoryName(repository);
  const upstream = annotations?.[upstreamAnnotation];
  const upstreamRepository = annotations?.[upstreamRepositoryAnnotation];
  const destination: ImportDestination =
    upstream && upstreamRepository && !options.asLocal
      ? { kind: 'mirror', upstream, repository: validateRepositoryName(upstreamRepository) }
      : { kind: 'local', repository: name };
  return { destination, name, ...(tag !== undefined ? { tag } : {}) };
}

function destinationKey(destination: ImportDestination): string {
  return destination.kind === 'local' ? `local\0${destination.repository}` : `mirror\0${destination.upstream}\0${destination.repository}`;
}

interface IndexEntry {
  mediaType: string;
  digest: string;
  annotations?: Record<string, string>;
}

/** What the archive says, read as JSON: a malformed document is the archive's fault, said in one line. */
async function readJsonEntry(handle: FileHandle, entry: TarEntry, file: string): Promise<unknown> {
  if (entry.size > maxDocumentBytes) throw new ImportError(`${file}: ${entry.name} is ${entry.size} bytes, more than a layout document holds`);
  try {
    return JSON.parse((await readTarEntryBytes(handle, entry)).toString('utf8')) as unknown;
  } catch {
    throw new ImportError(`${file}: ${entry.name} is not valid JSON`);
  }
}

/** Largest oci-layout, index.json or bundle description read (an index of many thousand images is a few MiB). */
const maxDocumentBytes = 64 * 1024 * 1024;

function indexEntries(index: unknown, file: string): IndexEntry[] {
  const manifests = (index as { manifests?: unknown } | null)?.manifests ?? [];
  if (!Array.isArray(manifests)) throw new ImportError(`${file}: index.json's manifests is not a list`);
  return manifests.map((entry: unknown, position): IndexEntry => {
    const fields = (entry ?? {}) as Record<string, unknown>;
    const annotations = fields.annotations;
    if (typeof fields.mediaType !== 'string' || typeof fields.digest !== 'string') {
      throw new ImportError(`${file}: index.json's manifests[${position}] needs a mediaType and a digest`);
    }
    if (annotations !== undefined && (typeof annotations !== 'object' || annotations === null || Object.values(annotations).some((value) => typeof value !== 'string'))) {
      throw new ImportError(`${file}: index.json's manifests[${position}].annotations is not a map of strings`);
    }
    return { mediaType: fields.mediaType, digest: fields.digest, ...(annotations ? { annotations: annotations as Record<string, string> } : {}) };
  });
}

/** Whether a blob entry's bytes are the digest its name gives (read once more when written). */
async function entryHolds(file: string, entry: TarEntry, digestText: string): Promise<boolean> {
  const digest = parseDigest(digestText);
  const hash = newHash(digest.algorithm);
  for await (const chunk of readTarEntry(file, entry)) hash.update(chunk as Buffer);
  return digestOf(digest.algorithm, hash).value === digest.value;
}

/** Problems the archive's own content causes (a bad name, digest or manifest) become one line naming the archive. */
function inArchive<T>(file: string, work: () => Promise<T>): Promise<T> {
  return work().catch((error: unknown) => {
    if (error instanceof TarFormatError || error instanceof RegistryError) throw new ImportError(`${file}: ${error.message}`);
    throw error;
  });
}

/**
 * Loads an OCI image layout archive (ours from `registry export`, or one skopeo wrote) into a
 * target. Everything is checked before anything is written: each entry's destination (an upstream
 * the target must name, for mirrored images), every manifest (its bytes against its digest, its
 * content, the sizes it gives its blobs), every blob the target does not hold yet (its bytes
 * against its digest), and for an incremental bundle the blobs it left out, which the target must
 * hold already. A bundle that fails any check leaves nothing behind: no bytes, no rows, no
 * repository. Then, per destination, its blobs, then its manifests, children and subjects before
 * what names them, then the tags. Digests are preserved exactly.
 */
export async function importArchive(file: string, target: ImportTarget, options: ImportOptions = {}): Promise<ImportSummary> {
  const handle = await open(file, 'r');
  try {
    return await importFrom(file, handle, target, options);
  } finally {
    await handle.close();
  }
}

async function importFrom(file: string, handle: FileHandle, target: ImportTarget, options: ImportOptions): Promise<ImportSummary> {
  const entries = new Map<string, TarEntry>();
  for (const entry of await inArchive(file, () => listTarEntries(handle))) if (entry.type === 'file') entries.set(entry.name, entry);
  const layoutEntry = entries.get('oci-layout');
  const indexEntry = entries.get('index.json');
  if (!layoutEntry || !indexEntry) throw new ImportError(`${file} is not an OCI image layout archive (no oci-layout or index.json)`);
  const layout = (await readJsonEntry(handle, layoutEntry, file)) as { imageLayoutVersion?: unknown } | null;
  if (typeof layout?.imageLayoutVersion !== 'string' || !layout.imageLayoutVersion.startsWith('1.')) {
    throw new ImportError(`${file}: unsupported image layout version ${JSON.stringify(layout?.imageLayoutVersion ?? null)}`);
  }
  const index = indexEntries(await readJsonEntry(handle, indexEntry, file), file);
  const descriptionEntry = entries.get(bundleDescriptionName);
  let bundle: BundleDescription | null = null;
  if (descriptionEntry) {
    if (descriptionEntry.size > maxDocumentBytes) throw new ImportError(`${file}: ${descriptionEntry.name} is ${descriptionEntry.size} bytes, more than a bundle description holds`);
    try {
      bundle = parseBundleDescription(await readTarEntryBytes(handle, descriptionEntry), file);
    } catch (error) {
      throw new ImportError((error as Error).message);
    }
  }
  const leftOut = new Set(bundle?.leftOut ?? []);
  const bundleTime = bundle ? Date.parse(bundle.created) : undefined;

  const blobEntry = (digest: string): TarEntry => {
    const entry = entries.get(blobEntryName(digest));
    if (!entry) throw new ImportError(`${file} lacks blob ${digest}`);
    return entry;
  };
  const plans = new Map<string, DestinationPlan>();
  const planFor = (destination: ImportDestination): DestinationPlan => {
    const key = destinationKey(destination);
    let plan = plans.get(key);
    if (!plan) plans.set(key, (plan = { destination, names: new Set(), blobs: new Map(), leftOut: new Map(), manifests: [] }));
    return plan;
  };

  const addManifest = async (plan: DestinationPlan, digest: string, mediaType: string, tag: string | undefined, seenAt: number | undefined): Promise<void> => {
    const already = plan.manifests.find((manifest) => manifest.digest === digest);
    if (already && tag === undefined) return;
    const entry = blobEntry(digest);
    if (entry.size > maxManifestBytes) throw new ImportError(`${file}: manifest ${digest} is ${entry.size} bytes, more than the ${maxManifestBytes} a registry takes`);
    const payload = await readTarEntryBytes(handle, entry);
    if (!already) {
      const actual = digestBytes(payload, parseDigest(digest).algorithm).value;
      if (actual !== digest) throw new ImportError(`${file}: the manifest stored as ${digest} hashes to ${actual}; the archive is damaged or was altered`);
      const parsed = parseManifest(payload, mediaType);
      for (const blob of parsed.blobs) {
        if (isNonDistributableLayer(blob.mediaType)) continue;
        const blobFile = entries.get(blobEntryName(blob.digest));
        if (blobFile && blobFile.size !== blob.size) {
          throw new ImportError(`${file}: manifest ${digest} gives blob ${blob.digest} ${blob.size} bytes; the archive holds ${blobFile.size}`);
        }
        if (blobFile) plan.blobs.set(blob.digest, blobFile.size);
        else if (leftOut.has(blob.digest)) plan.leftOut.set(blob.digest, blob.size);
        else blobEntry(blob.digest);
      }
      for (const child of parsed.manifests) {
        // A mirror cache may hold some platforms of an index only; so may a bundle made from one.
        if (plan.destination.kind === 'mirror' && !entries.has(blobEntryName(child.digest))) continue;
        await addManifest(plan, child.digest, child.mediaType, undefined, seenAt);
      }
      if (parsed.subject && entries.has(blobEntryName(parsed.subject.digest))) {
        await addManifest(plan, parsed.subject.digest, parsed.subject.mediaType, undefined, seenAt);
      }
    }
    plan.manifests.push({ digest, mediaType, payload, seenAt, ...(tag !== undefined ? { tag } : {}) });
  };

  let images = 0;
  await inArchive(file, async () => {
    for (const descriptor of index) {
      const found = destinationOf(descriptor.annotations, options);
      if (!found) {
        throw new ImportError(`index.json entry ${descriptor.digest} names no repository (ref name ${JSON.stringify(descriptor.annotations?.[refNameAnnotation] ?? null)}); name one with --repository`);
      }
      parseDigest(descriptor.digest);
      const seen = descriptor.annotations?.[tagSeenAnnotation];
      const seenAt = seen !== undefined && Number.isFinite(Date.parse(seen)) ? Date.parse(seen) : bundleTime;
      const plan = planFor(found.destination);
      plan.names.add(found.tag !== undefined ? `${found.name}:${found.tag}` : found.name);
      await addManifest(plan, descriptor.digest, descriptor.mediaType, found.tag, seenAt);
      if (found.tag !== undefined) images++;
    }
  });

  await checkDestinations([...plans.values()], target);
  for (const plan of plans.values()) {
    for (const digest of plan.leftOut.keys()) {
      if (await target.holdsBlob(plan.destination, digest)) continue;
      const since = bundle?.since ? `bundle ${bundle.since.id} of ${bundle.since.created}` : 'an earlier bundle';
      throw new ImportError(
        `${file} is an incremental bundle made after ${since}, and left out blob ${digest} (of ${[...plan.names].join(', ')}), which the ${describeDestination(plan.destination)} does not hold: import that bundle first`,
      );
    }
  }
  // Every blob the target will be sent, read once before anything is written.
  const verified = new Set<string>();
  for (const plan of plans.values()) {
    for (const digest of plan.blobs.keys()) {
      if (verified.has(digest) || (await target.holdsBlob(plan.destination, digest))) continue;
      if (!(await entryHolds(file, blobEntry(digest), digest))) throw new ImportError(`${file}: blob ${digest} holds other bytes (they hash to another digest); the archive is damaged or was altered`);
      verified.add(digest);
    }
  }

  const allBlobs = new Map<string, number>();
  const allManifests = new Set<string>();
  for (const plan of plans.values()) {
    for (const [digest, size] of plan.blobs) allBlobs.set(digest, size);
    for (const [digest, size] of plan.leftOut) allBlobs.set(digest, size);
    for (const manifest of plan.manifests) allManifests.add(manifest.digest);
  }
  const stored = new Map<string, number>();
  const tags: ImportSummary['tags'] = { created: 0, moved: 0, unchanged: 0, 'kept-newer': 0 };
  const total = [...plans.values()].reduce((sum, plan) => sum + [...plan.blobs.values()].reduce((a, b) => a + b, 0), 0);
  let done = 0;
  for (const plan of plans.values()) {
    for (const [digest, size] of plan.blobs) {
      if (!(await target.useExistingBlob(plan.destination, digest))) {
        await target.putBlob(plan.destination, digest, size, () => readTarEntry(file, blobEntry(digest)));
        stored.set(digest, size);
      }
      done += size;
      options.onProgress?.(done, total);
    }
    for (const digest of plan.leftOut.keys()) await target.useExistingBlob(plan.destination, digest);
    const put = new Set<string>();
    for (const manifest of plan.manifests) {
      if (manifest.tag === undefined && put.has(manifest.digest)) continue;
      const result = await target.putManifest(plan.destination, manifest.tag ?? manifest.digest, manifest.payload, manifest.mediaType, manifest.seenAt);
      if (result.digest !== manifest.digest) throw new ImportError(`${describeDestination(plan.destination)}: manifest ${manifest.digest} was stored as ${result.digest}`);
      if (result.tag) tags[result.tag]++;
      put.add(manifest.digest);
    }
  }
  options.onProgress?.(total, total);
  const bytesStored = [...stored.values()].reduce((sum, size) => sum + size, 0);
  return {
    images,
    manifests: allManifests.size,
    blobs: allBlobs.size,
    bytes: [...allBlobs.values()].reduce((sum, size) => sum + size, 0),
    blobsStored: stored.size,
    bytesStored,
    blobsPresent: allBlobs.size - stored.size,
    tags,
    bundle,
  };
}

/** Refuses, naming every image concerned, when the target cannot take a destination (an upstream it does not name). */
async function checkDestinations(plans: DestinationPlan[], target: ImportTarget): Promise<void> {
  const problems: string[] = [];
  for (const plan of plans) {
    const refusal = await target.refusal(plan.destination);
    if (refusal) problems.push(`${[...plan.names].join(', ')}: ${refusal}`);
  }
  if (problems.length === 0) return;
  const mirrored = plans.some((plan) => plan.destination.kind === 'mirror');
  throw new ImportError(
    `nothing imported:\n  ${problems.join('\n  ')}` +
      (mirrored
        ? '\nName each upstream under mirror.upstreams of this site (any URL, even one this site cannot reach: the cache then serves the images offline), ' +
          'or pass --as-local to import mirrored images as local repositories under the names they were exported with.'
        : ''),
  );
}
