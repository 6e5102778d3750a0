import { digestBytes, parseDigest, type Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { isNonDistributableLayer, mediaTypes } from '../oci/media-types.js';
import type { StorageDriver } from '../storage/driver.js';
import { storagePaths } from '../storage/paths.js';
import { getSmallObject, putSmallObject } from '../storage/small-objects.js';

/**
 * A storage root that CNCF Distribution (registry:2, 2.x and 3.x) wrote, read so that this registry
 * serves the same repositories, tags and digests. Distribution keeps, under `docker/registry/v2/`
 * (on S3 under the bucket's root directory alike):
 *
 *   blobs/<alg>/<2 hex>/<hex>/data                                     every blob and manifest's bytes
 *   repositories/<name>/_manifests/revisions/<alg>/<hex>/link            a manifest the repository holds
 *   repositories/<name>/_manifests/tags/<tag>/current/link               the digest a tag points at
 *   repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link     digests the tag pointed at
 *   repositories/<name>/_layers/<alg>/<hex>/link                         a blob linked into the repository
 *   repositories/<name>/_uploads/<id>/…                                  an upload in progress
 *
 * Adopting writes this registry's own links (storage/paths.ts) beside them and makes each blob
 * available at this registry's blob key: the same key when Distribution's tree is the root itself, a
 * hard link on a filesystem, a server-side copy on S3. Nothing of Distribution's is changed or
 * removed, so Distribution can be started again on the same root.
 */

/** Where Distribution's tree sits under a storage root, in the order they are looked for. */
const treePrefixes = ['docker/registry/v2', ''] as const;

export interface DistributionRepository {
  /** Manifest digests with a revision link. */
  revisions: Set<string>;
  /** Tag → the digest of its current link. */
  tags: Map<string, string>;
  /** Blob digests with a layer link. */
  layers: Set<string>;
  /** Upload ids in progress. */
  uploads: Set<string>;
}

export interface DistributionTree {
  /** The tree's key prefix under the storage root ('' when the root is the tree). */
  prefix: string;
  repositories: Map<string, DistributionRepository>;
  /** Keys of the tree that are none of the above. */
  unknown: string[];
}

export interface AdoptionProblem {
  repository: string;
  what: string;
  reason: string;
}

export interface AdoptionSummary {
  repositories: number;
  manifests: number;
  tags: number;
  layerLinks: number;
  /** Blobs made available at this registry's keys (linked or copied). */
  blobsCopied: number;
  /** Uploads Distribution had in progress: not carried over (clients start them again). */
  uploads: number;
  problems: AdoptionProblem[];
}

function join(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}/${key}`;
}

function digestOfLink(bytes: Buffer): Digest {
  return parseDigest(bytes.toString('utf8').trim());
}

/** Finds and reads a Distribution tree under the root; null when there is none. */
export async function findDistributionTree(storage: StorageDriver): Promise<DistributionTree | null> {
  for (const prefix of treePrefixes) {
    const tree = await readTree(storage, prefix);
    if (tree) return tree;
  }
  return null;
}

/** The tree at one prefix: null when its repositories hold no Distribution link at all. */
async function readTree(storage: StorageDriver, prefix: string): Promise<DistributionTree | null> {
  const repositoriesRoot = join(prefix, 'repositories');
  const tree: DistributionTree = { prefix, repositories: new Map(), unknown: [] };
  let distributionLinks = 0;
  const repository = (name: string) => {
    let found = tree.repositories.get(name);
    if (!found) tree.repositories.set(name, (found = { revisions: new Set(), tags: new Map(), layers: new Set(), uploads: new Set() }));
    return found;
  };
  for await (const key of storage.list(repositoriesRoot)) {
    const segments = key.slice(repositoriesRoot.length + 1).split('/');
    const marker = segments.findIndex((segment) => segment.startsWith('_'));
    const name = segments.slice(0, marker).join('/');
    const kind = segments[marker];
    const rest = segments.slice(marker + 1);
    if (marker <= 0) {
      tree.unknown.push(key);
    } else if (kind === '_manifests' && rest[0] === 'revisions' && rest.length === 4 && rest[3] === 'link') {
      repository(name).revisions.add(`${rest[1]}:${rest[2]}`);
      distributionLinks++;
    } else if (kind === '_manifests' && rest[0] === 'tags' && rest.length === 4 && rest[2] === 'current' && rest[3] === 'link') {
      repository(name).tags.set(rest[1]!, digestOfLink(await getSmallObject(storage, key)).value);
      distributionLinks++;
    } else if (kind === '_manifests' && rest[0] === 'tags' && rest.length === 6 && rest[2] === 'index' && rest[5] === 'link') {
      // A tag's past digests: this registry's audit log starts at the adoption.
    } else if (kind === '_layers' && rest.length === 3 && rest[2] === 'link') {
      repository(name).layers.add(`${rest[0]}:${rest[1]}`);
      distributionLinks++;
    } else if (kind === '_uploads' && rest.length >= 2) {
      repository(name).uploads.add(rest[0]!);
    } else if ((kind === '_manifests' && rest.length === 2) || (kind === '_tags' && rest.length === 1)) {
      // This registry's own links (when Distribution's tree is the root itself).
    } else {
      tree.unknown.push(key);
    }
  }
  if (prefix !== '') {
    for await (const key of storage.list(prefix)) {
      if (!key.startsWith(`${repositoriesRoot}/`) && !key.startsWith(`${join(prefix, 'blobs')}/`)) tree.unknown.push(key);
    }
  }
  return distributionLinks > 0 ? tree : null;
}

/** A manifest's media type from its own bytes, as Distribution stores it without one beside it. */
function mediaTypeOf(payload: Buffer): string {
  const body = JSON.parse(payload.toString('utf8')) as { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown; config?: unknown };
  if (typeof body.mediaType === 'string') return body.mediaType;
  if (body.schemaVersion === 1) return mediaTypes.dockerSchema1Signed;
  return Array.isArray(body.manifests) ? mediaTypes.ociIndex : mediaTypes.ociManifest;
}

/**
 * Writes this registry's links for everything the tree holds that it can serve, and makes the
 * blobs they need available at this registry's keys. What it cannot read is named in `problems`.
 * Then `rebuildMetadata` reads the links as it reads this registry's own.
 */
export async function adoptDistributionTree(storage: StorageDriver, tree: DistributionTree, onProgress?: (done: number, total: number) => void): Promise<AdoptionSummary> {
  const summary: AdoptionSummary = { repositories: 0, manifests: 0, tags: 0, layerLinks: 0, blobsCopied: 0, uploads: 0, problems: [] };
  for (const key of tree.unknown) summary.problems.push({ repository: '', what: key, reason: 'not part of a layout Distribution or this registry writes' });
  const available = new Set<string>();
  /** Makes a blob of the tree available at this registry's key; false when Distribution does not hold its bytes. */
  const provide = async (digest: Digest): Promise<boolean> => {
    if (available.has(digest.value)) return true;
    const ours = storagePaths.blobData(digest);
    const theirs = join(tree.prefix, ours);
    const source = await storage.stat(theirs);
    if (!source) return false;
    if (theirs !== ours && (await storage.stat(ours))?.size !== source.size) {
      await storage.copy(theirs, ours);
      summary.blobsCopied++;
    }
    available.add(digest.value);
    return true;
  };
  const total = [...tree.repositories.values()].reduce((sum, repository) => sum + repository.revisions.size, 0);
  let done = 0;
  onProgress?.(done, total);
  for (const [name, repository] of [...tree.repositories].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const problem = (what: string, reason: string) => summary.problems.push({ repository: name, what, reason });
    summary.uploads += repository.uploads.size;
    const adopted = new Set<string>();
    for (const revision of repository.revisions) {
      onProgress?.(++done, total);
      try {
        const digest = parseDigest(revision);
        if (!(await provide(digest))) {
          problem(revision, 'manifest bytes missing from blobs/');
          continue;
        }
        const payload = await getSmallObject(storage, storagePaths.blobData(digest));
        if (digestBytes(payload, digest.algorithm).value !== digest.value) throw new Error('stored bytes do not match the digest');
        const mediaType = mediaTypeOf(payload);
        if (mediaType === mediaTypes.dockerSchema1Signed || mediaType === mediaTypes.dockerSchema1) {
          problem(revision, 'a Docker schema 1 manifest (deprecated, signed): not served by this registry; push the image again as schema 2 or OCI');
          continue;
        }
        const manifest = parseManifest(payload, mediaType);
        let missing: string | undefined;
        for (const blob of manifest.blobs) {
          if (isNonDistributableLayer(blob.mediaType)) continue;
          if (!(await provide(parseDigest(blob.digest)))) missing ??= blob.digest;
        }
        if (missing) {
          problem(revision, `blob ${missing} is missing from blobs/`);
          continue;
        }
        const link = storagePaths.repositoryManifest(name, digest);
        if (!(await storage.stat(link))) await putSmallObject(storage, link, Buffer.from(JSON.stringify({ mediaType })));
        adopted.add(digest.value);
        summary.manifests++;
      } catch (error) {
        problem(revision, (error as Error).message);
      }
    }
    for (const [tag, digest] of repository.tags) {
      if (!adopted.has(digest)) {
        problem(`tag ${tag}`, repository.revisions.has(digest) ? `points at ${digest}, which could not be read` : `points at ${digest}, which the repository no longer holds (deleted)`);
        continue;
      }
      await putSmallObject(storage, storagePaths.repositoryTag(name, tag), Buffer.from(digest));
      summary.tags++;
    }
    for (const layer of repository.layers) {
      if (await provide(parseDigest(layer))) summary.layerLinks++;
      else problem(`layer ${layer}`, 'linked, but its bytes are missing from blobs/');
    }
    if (adopted.size > 0 || repository.layers.size > 0) summary.repositories++;
  }
  return summary;
}
