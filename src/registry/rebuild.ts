import { insertBlob, linkBlob } from '../metadata/blobs.js';
import { holdsAnyManifest } from '../metadata/manifests.js';
import { ensureRepository } from '../metadata/repositories.js';
import { digestBytes, parseDigest } from '../oci/digest.js';
import { parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { isNonDistributableLayer } from '../oci/media-types.js';
import { StorageNotFoundError } from '../storage/driver.js';
import { storagePaths } from '../storage/paths.js';
import { getSmallObject } from '../storage/small-objects.js';
import type { RegistryStores } from './context.js';
import { manifestEvents, writeManifestRows } from './manifest-rows.js';
import { appendAuditEvents, noReceivers, systemOrigin } from '../metadata/audit.js';
import { adoptDistributionTree, findDistributionTree, type AdoptionSummary, type DistributionTree } from './distribution-root.js';

/** Each tag a rebuild finds is a `created` event of the registry itself: the log restarts from what storage holds. */

export interface RebuildProgress {
  done: number;
  total: number;
}

export interface RebuildSummary {
  repositories: number;
  manifests: number;
  tags: number;
  blobLinks: number;
  /** What could not be rebuilt, and why. */
  skipped: Array<{ repository: string; what: string; reason: string }>;
  /** A root Distribution wrote, read as well: where its tree is and what was made of it. */
  distribution: (AdoptionSummary & { prefix: string }) | null;
}

/** Top-level entries of a storage root that this registry writes (blobs, links, uploads, its signing key, an embedded database). */
const ownTopLevel = new Set(['blobs', 'repositories', 'uploads', 'auth', 'registry.db', 'registry.db-wal', 'registry.db-shm']);
/** How many unknown keys a rebuild that found nothing names. */
const unknownKeysNamed = 10;

export class RebuildRefusedError extends Error {}

interface RepositoryContents {
  /** Manifest digest → media type recorded in the repository's link. */
  manifests: Map<string, string | undefined>;
  /** Tag → manifest digest. */
  tags: Map<string, string>;
}

interface LoadedManifest {
  digest: string;
  payload: Buffer;
  manifest: ParsedManifest;
}

/** Reads the repository, manifest and tag links under repositories/ (see storage/paths.ts). */
async function scanRepositories(stores: RegistryStores): Promise<Map<string, RepositoryContents>> {
  const repositories = new Map<string, RepositoryContents>();
  const contentsOf = (name: string) => {
    let contents = repositories.get(name);
    if (!contents) repositories.set(name, (contents = { manifests: new Map(), tags: new Map() }));
    return contents;
  };
  for await (const key of stores.storage.list(storagePaths.repositoriesRoot)) {
    const segments = key.split('/');
    const marker = segments.findIndex((segment, index) => index > 1 && segment.startsWith('_'));
    if (marker < 0) continue;
    const name = segments.slice(1, marker).join('/');
    const rest = segments.slice(marker + 1);
    if (segments[marker] === '_manifests' && rest.length === 2) {
      const link = await getSmallObject(stores.storage, key);
      let mediaType: string | undefined;
      try {
        mediaType = (JSON.parse(link.toString('utf8')) as { mediaType?: string }).mediaType;
      } catch {
        mediaType = undefined;
      }
      contentsOf(name).manifests.set(`${rest[0]}:${rest[1]}`, mediaType);
    } else if (segments[marker] === '_tags' && rest.length === 1) {
      contentsOf(name).tags.set(rest[0]!, (await getSmallObject(stores.storage, key)).toString('utf8').trim());
    }
  }
  return repositories;
}

/**
 * Fills an empty metadata database from blob storage alone: every repository's manifests (bytes
 * verified against their digests), their blob links and references, and its tags. A manifest whose
 * blobs or children are missing from storage is left out and reported, never recorded half.
 */
export async function rebuildMetadata(stores: RegistryStores, onProgress?: (progress: RebuildProgress) => void): Promise<RebuildSummary> {
  const { storage, metadata, clock } = stores;
  if (await holdsAnyManifest(metadata)) {
    throw new RebuildRefusedError('the metadata database already holds manifests: rebuild fills an empty database only');
  }
  const tree = await findDistributionTree(storage);
  const adoption = tree ? await adoptDistributionTree(storage, tree, (done, total) => onProgress?.({ done, total })) : null;
  const repositories = await scanRepositories(stores);
  const total = [...repositories.values()].reduce((sum, contents) => sum + contents.manifests.size, 0);
  const summary: RebuildSummary = {
    repositories: 0,
    manifests: 0,
    tags: 0,
    blobLinks: 0,
    skipped: adoption ? [...adoption.problems] : [],
    distribution: adoption && tree ? { ...adoption, prefix: tree.prefix } : null,
  };
  if (repositories.size === 0 && !tree) {
    for (const key of await unknownKeys(stores)) summary.skipped.push({ repository: '', what: key, reason: 'not part of a layout Distribution or this registry writes' });
  }
  let done = 0;
  onProgress?.({ done, total });

  for (const [repository, contents] of [...repositories].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const skip = (what: string, reason: string) => summary.skipped.push({ repository, what, reason });
    const pending: LoadedManifest[] = [];
    for (const [digestText, mediaType] of contents.manifests) {
      try {
        const digest = parseDigest(digestText);
        const payload = await getSmallObject(storage, storagePaths.blobData(digest));
        if (digestBytes(payload, digest.algorithm).value !== digest.value) throw new Error('stored bytes do not match the digest');
        pending.push({ digest: digest.value, payload, manifest: parseManifest(payload, mediaType) });
      } catch (error) {
        const reason = error instanceof StorageNotFoundError ? 'manifest bytes missing from storage' : (error as Error).message;
        skip(digestText, reason);
        onProgress?.({ done: ++done, total });
      }
    }

    // Children before the indexes that name them: record whatever has all its children, until nothing moves.
    const ids = new Map<string, number>();
    let recordedThisRepository = 0;
    for (let progressed = true; progressed && pending.length > 0; ) {
      progressed = false;
      for (const entry of [...pending]) {
        const childDigests = entry.manifest.manifests.map((child) => child.digest);
        if (!childDigests.every((digest) => ids.has(digest))) continue;
        pending.splice(pending.indexOf(entry), 1);
        progressed = true;
        onProgress?.({ done: ++done, total });
        const blobs = entry.manifest.blobs.filter((blob) => !isNonDistributableLayer(blob.mediaType));
        const sizes = await Promise.all(blobs.map((blob) => storage.stat(storagePaths.blobData(parseDigest(blob.digest)))));
        const missing = blobs.find((blob, index) => sizes[index]?.size !== blob.size);
        if (missing) {
          skip(entry.digest, `blob ${missing.digest} is missing from storage or has another size`);
          continue;
        }
        for (const [index, blob] of blobs.entries()) await insertBlob(metadata, { digest: blob.digest, size: sizes[index]!.size }, clock.now());
        const tags = [...contents.tags].filter(([, digest]) => digest === entry.digest).map(([tag]) => tag);
        const record = {
          repository,
          digest: entry.digest,
          payload: entry.payload,
          manifest: entry.manifest,
          blobDigests: [...new Set(blobs.map((blob) => blob.digest))],
          childIds: childDigests.map((digest) => ids.get(digest)!),
          tags,
        };
        const { id } = await metadata.transaction().execute(async (transaction) => {
          const now = clock.now();
          const written = await writeManifestRows(transaction, record, now);
          // Re-recorded history, not a change: receivers heard of these pushes when they happened.
          await appendAuditEvents(transaction, manifestEvents(record, written, { recordUnchanged: false, recordPush: false }), systemOrigin('rebuild'), now, noReceivers);
          return written;
        });
        ids.set(entry.digest, id);
        recordedThisRepository++;
        summary.manifests++;
        summary.tags += tags.length;
        summary.blobLinks += new Set(blobs.map((blob) => blob.digest)).size;
      }
    }
    for (const entry of pending) {
      skip(entry.digest, 'names a manifest that could not be rebuilt');
      onProgress?.({ done: ++done, total });
    }
    for (const [tag, digest] of contents.tags) {
      if (!ids.has(digest)) skip(`tag ${tag}`, `points at ${digest}, which could not be rebuilt`);
    }
    if (recordedThisRepository > 0) summary.repositories++;
  }
  if (tree) await linkLayers(stores, tree);
  return summary;
}

/**
 * Links the blobs Distribution had linked into each repository without a manifest naming them (a
 * push cut short before its manifest): a client finishing that push finds them, as it would have.
 */
async function linkLayers(stores: RegistryStores, tree: DistributionTree): Promise<void> {
  for (const [name, repository] of tree.repositories) {
    for (const layer of repository.layers) {
      const digest = parseDigest(layer);
      const info = await stores.storage.stat(storagePaths.blobData(digest));
      if (!info) continue;
      await stores.metadata.transaction().execute(async (transaction) => {
        const row = await ensureRepository(transaction, name, stores.clock.now());
        await insertBlob(transaction, { digest: digest.value, size: info.size }, stores.clock.now());
        await linkBlob(transaction, row.id, digest.value, stores.clock.now());
      });
    }
  }
}

/** Keys at the root that neither this registry nor Distribution writes, at most unknownKeysNamed of them. */
async function unknownKeys(stores: RegistryStores): Promise<string[]> {
  const found: string[] = [];
  for await (const key of stores.storage.list('')) {
    if (ownTopLevel.has(key.split('/')[0]!)) continue;
    found.push(key);
    if (found.length >= unknownKeysNamed) break;
  }
  return found;
}
