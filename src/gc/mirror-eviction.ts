import type { MetadataDb } from '../metadata/database.js';
import type { OutboxPayloads } from '../metadata/audit.js';
import {
  evictCachedManifests,
  listCachedBlobSizes,
  listCachedManifestsWithPayloads,
  listCachedReferrers,
  type CachedManifestRow,
  type UpstreamRepository,
} from '../metadata/mirror.js';
import { parseManifest } from '../oci/manifest.js';
import { isNonDistributableLayer } from '../oci/media-types.js';

export interface EvictionSettings {
  /** Per upstream name: cached images not pulled for this long go; 0 (or absent): never. */
  retentionMs: Map<string, number>;
  /** The cache's distinct blobs may hold this many bytes; past it the least recently pulled go; 0: unlimited. */
  maxBytes: number;
  /** An image pulled within this window is never evicted. */
  graceMs: number;
}

/** A cached image: a top-level manifest with the children and referrers it brings, and its last pull. */
interface CachedImage {
  from: UpstreamRepository;
  /** The top-level manifest's digest. */
  digest: string;
  members: string[];
  lastUsed: number;
  /** Why it goes. */
  reason: 'retention' | 'maxsize';
}

export interface EvictedImage {
  upstream: string;
  repository: string;
  digest: string;
  manifests: number;
  reason: 'retention' | 'maxsize';
}

function safeParse(row: { mediaType: string; payload: Uint8Array }) {
  try {
    return parseManifest(Buffer.from(row.payload), row.mediaType);
  } catch {
    return null;
  }
}

/** The blobs the manifests name (configs, layers), for which links to keep. */
export function blobsNamedBy(manifests: Array<{ mediaType: string; payload: Uint8Array }>): Set<string> {
  const named = new Set<string>();
  for (const manifest of manifests) {
    for (const blob of safeParse(manifest)?.blobs ?? []) if (!isNonDistributableLayer(blob.mediaType)) named.add(blob.digest);
  }
  return named;
}

const keyOf = (from: UpstreamRepository) => `${from.upstream}\0${from.repository}`;

/**
 * Groups the cache into images: every manifest no cached index names and no cached subject lists
 * as a referrer is the top of one, with its children and referrers, transitively. An image's last
 * pull is the latest of its members'.
 */
function cachedImages(manifests: CachedManifestRow[], referrers: Awaited<ReturnType<typeof listCachedReferrers>>): Omit<CachedImage, 'reason'>[] {
  const byRepository = new Map<string, { from: UpstreamRepository; rows: Map<string, CachedManifestRow>; referrers: Map<string, string[]> }>();
  for (const row of manifests) {
    const key = keyOf(row);
    let entry = byRepository.get(key);
    if (!entry) byRepository.set(key, (entry = { from: { upstream: row.upstream, repository: row.repository }, rows: new Map(), referrers: new Map() }));
    entry.rows.set(row.digest, row);
  }
  for (const list of referrers) byRepository.get(keyOf(list))?.referrers.set(list.subject, list.referrers);
  const images: Omit<CachedImage, 'reason'>[] = [];
  for (const { from, rows, referrers: listed } of byRepository.values()) {
    const below = (digest: string): string[] => [
      ...(safeParse(rows.get(digest)!)?.manifests.map((child) => child.digest) ?? []),
      ...(listed.get(digest) ?? []),
    ].filter((next) => rows.has(next));
    const named = new Set<string>();
    for (const digest of rows.keys()) for (const next of below(digest)) named.add(next);
    for (const top of rows.keys()) {
      if (named.has(top)) continue;
      const members = new Set([top]);
      for (const digest of members) for (const next of below(digest)) members.add(next);
      images.push({ from, digest: top, members: [...members], lastUsed: Math.max(...[...members].map((digest) => rows.get(digest)!.usedAt)) });
    }
  }
  return images;
}

/**
 * What to evict: images of an upstream with a retention, not pulled within it (nor the grace
 * window); then, while the cache is over its size, the least recently pulled images not pulled
 * within the grace window. Sizes are counted as the cache holds them: a blob goes from the count
 * once no cached manifest left names it.
 */
export async function planEviction(db: MetadataDb, settings: EvictionSettings, now: number): Promise<CachedImage[]> {
  const anyRetention = [...settings.retentionMs.values()].some((value) => value > 0);
  if (!anyRetention && settings.maxBytes === 0) return [];
  const manifests = await listCachedManifestsWithPayloads(db);
  const images = cachedImages(manifests, await listCachedReferrers(db));
  const graceCutoff = now - settings.graceMs;
  const plan: CachedImage[] = [];
  const evicted = new Set<Omit<CachedImage, 'reason'>>();
  for (const image of images) {
    const retention = settings.retentionMs.get(image.from.upstream) ?? 0;
    if (retention > 0 && image.lastUsed < Math.min(now - retention, graceCutoff)) {
      plan.push({ ...image, reason: 'retention' });
      evicted.add(image);
    }
  }
  if (settings.maxBytes > 0) {
    const sizes = await listCachedBlobSizes(db);
    const namedBy = new Map<string, number>();
    const blobsOf = new Map<string, string[]>();
    for (const row of manifests) {
      const blobs = [...blobsNamedBy([row])];
      blobsOf.set(`${keyOf(row)}\0${row.digest}`, blobs);
      for (const blob of blobs) namedBy.set(blob, (namedBy.get(blob) ?? 0) + 1);
    }
    let total = [...sizes.values()].reduce((sum, size) => sum + size, 0);
    const released = new Set<string>();
    const release = (image: Omit<CachedImage, 'reason'>) => {
      for (const member of image.members) {
        const key = `${keyOf(image.from)}\0${member}`;
        if (released.has(key)) continue;
        released.add(key);
        for (const blob of blobsOf.get(`${keyOf(image.from)}\0${member}`) ?? []) {
          const left = (namedBy.get(blob) ?? 1) - 1;
          namedBy.set(blob, left);
          if (left === 0) total -= sizes.get(blob) ?? 0;
        }
      }
    };
    for (const image of plan) release(image);
    const byAge = images.filter((image) => !evicted.has(image) && image.lastUsed < graceCutoff).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const image of byAge) {
      if (total <= settings.maxBytes) break;
      plan.push({ ...image, reason: 'maxsize' });
      evicted.add(image);
      release(image);
    }
  }
  // A manifest an image that stays shares (an index's child named by two indexes) stays with it.
  const kept = new Set<string>();
  for (const image of images) if (!evicted.has(image)) for (const member of image.members) kept.add(`${keyOf(image.from)}\0${member}`);
  return plan.map((image) => ({ ...image, members: image.members.filter((member) => !kept.has(`${keyOf(image.from)}\0${member}`)) }));
}

/** Carries out a plan, each image re-checked in its own transaction (a pull since the plan keeps it). */
export async function evict(db: MetadataDb, plan: CachedImage[], graceMs: number, now: number, outbox: OutboxPayloads): Promise<EvictedImage[]> {
  const done: EvictedImage[] = [];
  for (const image of plan) {
    // Race closed: a pull of the image after the plan was made (its manifests' use is recorded first).
    if (await evictCachedManifests(db, image.from, image.members, Math.min(image.lastUsed + 1, now - graceMs), blobsNamedBy, now, outbox)) {
      done.push({ ...image.from, digest: image.digest, manifests: image.members.length, reason: image.reason });
    }
  }
  return done;
}
