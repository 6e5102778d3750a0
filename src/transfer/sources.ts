import type { Readable } from 'node:stream';
import { findLinkedBlob } from '../metadata/blobs.js';
import { findManifestByReference, findReferrers } from '../metadata/manifests.js';
import { findMirrorBlob, findMirrorManifest, findMirrorReferrers, findMirrorTag, type UpstreamRepository } from '../metadata/mirror.js';
import { findRepository } from '../metadata/repositories.js';
import type { MirrorAddressing } from '../mirror/addressing.js';
import { parseDigest } from '../oci/digest.js';
import type { RegistryStores } from '../registry/context.js';
import type { ManifestContent } from '../registry/manifest-negotiation.js';
import { storagePaths } from '../storage/paths.js';

/** Where the content of one repository name is read from: a local repository or the mirror cache. */
export interface ContentSource {
  readonly description: string;
  /** The upstream repository of a mirror cache; null for a local repository. */
  readonly upstream: UpstreamRepository | null;
  manifest(reference: { tag: string } | { digest: string }): Promise<ManifestContent | undefined>;
  blobSize(digest: string): Promise<number | undefined>;
  /** Manifests whose subject is the digest (signatures, SBOMs…). */
  referrers(digest: string): Promise<ManifestContent[]>;
  /** When a mirrored tag was last seen upstream (ms); undefined for local tags. */
  tagSeenAt(tag: string): Promise<number | undefined>;
}

export function openBlobBytes(stores: RegistryStores, digest: string): Promise<Readable> {
  return stores.storage.read(storagePaths.blobData(parseDigest(digest)));
}

function localSource(stores: RegistryStores, repository: string): ContentSource {
  const db = stores.metadata;
  return {
    description: `local repository ${repository}`,
    upstream: null,
    manifest: (reference) => findManifestByReference(db, repository, reference),
    blobSize: async (digest) => (await findLinkedBlob(db, repository, digest))?.size,
    referrers: async (digest) => {
      const row = await findRepository(db, repository);
      return row ? findReferrers(db, row.id, digest) : [];
    },
    tagSeenAt: async () => undefined,
  };
}

function mirrorSource(stores: RegistryStores, from: UpstreamRepository): ContentSource {
  const db = stores.metadata;
  return {
    description: `mirror cache of ${from.upstream}/${from.repository}`,
    upstream: from,
    manifest: async (reference) => {
      const digest = 'digest' in reference ? reference.digest : (await findMirrorTag(db, from, reference.tag))?.digest;
      return digest ? findMirrorManifest(db, from, digest) : undefined;
    },
    blobSize: async (digest) => (await findMirrorBlob(db, from, digest))?.size,
    // The referrers the upstream listed whose manifests are cached (all of them after a sync).
    referrers: async (digest) => {
      const listed = (await findMirrorReferrers(db, from, digest))?.descriptors ?? [];
      const cached = await Promise.all(listed.map((descriptor) => findMirrorManifest(db, from, descriptor.digest)));
      return cached.filter((manifest): manifest is ManifestContent => manifest !== undefined);
    },
    tagSeenAt: async (tag) => (await findMirrorTag(db, from, tag))?.checkedAt,
  };
}

/** The source a repository name reads from, as a pull of it would: the mirror cache for mirrored names. */
export function contentSourceFor(stores: RegistryStores, addressing: MirrorAddressing | null, name: string): ContentSource {
  const target = addressing?.resolve(name, undefined);
  return target ? mirrorSource(stores, { upstream: target.upstream.name, repository: target.repository }) : localSource(stores, name);
}
