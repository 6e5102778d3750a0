import { ConfigError, readYamlFile } from '../config/load.js';
import { globToRegExp } from '../oci/name-patterns.js';
import { parseManifest } from '../oci/manifest.js';
import { isIndexMediaType, isNonDistributableLayer } from '../oci/media-types.js';
import { parseManifestReference } from '../oci/reference.js';
import { upstreamRepositoryName, type MirrorTarget } from './addressing.js';
import type { MirrorService } from './mirror-service.js';

/** One line of a sync list: an upstream repository and what of it to cache. */
export interface SyncImage {
  /** As written: `docker.io/library/alpine:3.20`. */
  text: string;
  target: MirrorTarget;
  /** Tags (exact or globs) and digests to cache. */
  references: Array<{ tag: string } | { tagPattern: RegExp; pattern: string } | { digest: string }>;
  /** `os/architecture[/variant]` of an index to keep; every platform when empty. */
  platforms: string[];
}

/** What the synced images consist of, counted as export and import count (see cli/report.ts), and what was fetched. */
export interface SyncSummary {
  images: number;
  failed: Array<{ image: string; reason: string }>;
  /** Distinct manifests (indexes, the platforms kept, referrers) and blobs of the images synced. */
  manifests: number;
  blobs: number;
  bytes: number;
  /** Of the blobs: fetched now, and cached already. */
  blobsFetched: number;
  bytesFetched: number;
  blobsPresent: number;
}

export interface SyncReporter {
  /** An image (one reference) starts: its total size once known. */
  image(label: string): { progress(done: number, total: number): void; done(outcome: { blobs: number; fetched: number } | { failed: string }): void };
}

/** The upstream an entry names, by upstream name (`docker.io/…`) or prefix (`dockerhub/…`). */
function targetOf(mirror: MirrorService, name: string, where: string): MirrorTarget {
  for (const upstream of mirror.settings.upstreams) {
    for (const lead of [upstream.name, upstream.prefix]) {
      if (!name.startsWith(`${lead}/`)) continue;
      const repository = upstreamRepositoryName(upstream, name.slice(lead.length + 1));
      if (!upstream.repositories.some((pattern) => pattern.test(repository))) {
        throw new ConfigError(`${where}: upstream ${upstream.name} does not serve ${repository} (mirror.upstreams.${upstream.name}.repositories)`);
      }
      return { upstream, repository, addressedBy: 'prefix' };
    }
  }
  const known = mirror.settings.upstreams.map((upstream) => `${upstream.name}/…, ${upstream.prefix}/…`).join('; ');
  throw new ConfigError(`${where}: ${JSON.stringify(name)} names no configured upstream (${known})`);
}

/** `name:tag`, `name@digest` or a bare name with `tags:` beside it. */
function splitReference(text: string): { name: string; reference: string | null } {
  const at = text.indexOf('@');
  if (at > 0) return { name: text.slice(0, at), reference: text.slice(at + 1) };
  const colon = text.lastIndexOf(':');
  if (colon > 0 && !text.slice(colon + 1).includes('/')) return { name: text.slice(0, colon), reference: text.slice(colon + 1) };
  return { name: text, reference: null };
}

function referenceOf(text: string, where: string): SyncImage['references'][number] {
  if (/[*?]/.test(text)) return { tagPattern: globToRegExp(text), pattern: text };
  try {
    const parsed = parseManifestReference(text);
    return parsed.kind === 'tag' ? { tag: parsed.tag } : { digest: parsed.digest.value };
  } catch {
    throw new ConfigError(`${where}: ${JSON.stringify(text)} is not a tag, tag pattern or digest`);
  }
}

/**
 * Reads a sync list:
 *   platforms: [linux/amd64, linux/arm64]     # optional, for every entry
 *   images:
 *     - docker.io/library/alpine:3.20
 *     - dockerhub/library/busybox@sha256:…
 *     - { name: docker.io/library/nginx, tags: ['1.27.*', stable], platforms: [linux/amd64] }
 */
export function readSyncList(file: string, mirror: MirrorService): SyncImage[] {
  const document = readYamlFile(file, 'sync list') as { images?: unknown; platforms?: unknown } | null;
  const strings = (value: unknown, where: string): string[] => {
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) throw new ConfigError(`${where}: expected a list of strings`);
    return value as string[];
  };
  const defaultPlatforms = strings(document?.platforms, `${file}: platforms`);
  if (!Array.isArray(document?.images) || document.images.length === 0) throw new ConfigError(`${file}: expected images: a list of images to cache`);
  return document.images.map((entry: unknown, index: number): SyncImage => {
    const where = `${file}: images[${index}]`;
    if (typeof entry === 'string') {
      const { name, reference } = splitReference(entry);
      if (reference === null) throw new ConfigError(`${where}: ${JSON.stringify(entry)} needs :TAG, @DIGEST, or the long form with tags:`);
      return { text: entry, target: targetOf(mirror, name, where), references: [referenceOf(reference, where)], platforms: defaultPlatforms };
    }
    if (typeof entry !== 'object' || entry === null || typeof (entry as { name?: unknown }).name !== 'string') {
      throw new ConfigError(`${where}: expected NAME:TAG or { name, tags, digests, platforms }`);
    }
    const long = entry as { name: string; tags?: unknown; digests?: unknown; platforms?: unknown };
    const references = [...strings(long.tags, `${where}.tags`), ...strings(long.digests, `${where}.digests`)].map((text) => referenceOf(text, where));
    if (references.length === 0) throw new ConfigError(`${where}: name tags or digests to cache`);
    const platforms = long.platforms === undefined ? defaultPlatforms : strings(long.platforms, `${where}.platforms`);
    return { text: long.name, target: targetOf(mirror, long.name, where), references, platforms };
  });
}

function platformOf(platform: { os?: string; architecture?: string; variant?: string } | undefined): string {
  return [platform?.os ?? '', platform?.architecture ?? '', ...(platform?.variant ? [platform.variant] : [])].join('/');
}

/**
 * Caches every image of the list from its upstream, as pulls through the mirror would: tags asked
 * about afresh, the platforms wanted of an index, and the blobs not cached yet (the rest skipped, so
 * a rerun resumes where an interrupted one stopped).
 */
export async function syncImages(mirror: MirrorService, images: SyncImage[], reporter: SyncReporter): Promise<SyncSummary> {
  const summary: SyncSummary = { images: 0, failed: [], manifests: 0, blobs: 0, bytes: 0, blobsFetched: 0, bytesFetched: 0, blobsPresent: 0 };
  const manifestsSeen = new Set<string>();
  /** Each blob with whether this run fetched it. */
  const blobsSeen = new Map<string, { size: number; fetched: boolean }>();
  for (const image of images) {
    const resolved: Array<{ label: string; reference: { tag: string } | { digest: string } }> = [];
    try {
      for (const reference of image.references) {
        if ('tagPattern' in reference) {
          const tags = (await mirror.upstreamTags(image.target)).filter((tag) => reference.tagPattern.test(tag)).sort();
          if (tags.length === 0) throw new Error(`no tag of ${image.target.repository} matches ${reference.pattern}`);
          for (const tag of tags) resolved.push({ label: `${image.text}:${tag}`, reference: { tag } });
        } else {
          resolved.push({ label: 'tag' in reference ? `${splitReference(image.text).name}:${reference.tag}` : `${splitReference(image.text).name}@${reference.digest}`, reference });
        }
      }
    } catch (error) {
      summary.failed.push({ image: image.text, reason: (error as Error).message });
      continue;
    }
    for (const { label, reference } of resolved) {
      const progress = reporter.image(label);
      try {
        const top = await mirror.cachedManifest(image.target, reference, { revalidate: true });
        const images = [top];
        const manifests = new Set([top.digest]);
        if (isIndexMediaType(top.mediaType)) {
          images.length = 0;
          for (const child of parseManifest(Buffer.from(top.payload), top.mediaType).manifests) {
            if (image.platforms.length > 0 && !image.platforms.includes(platformOf(child.platform))) continue;
            images.push(await mirror.cachedManifest(image.target, { digest: child.digest }));
            manifests.add(child.digest);
          }
        }
        // Their referrers too (signatures, SBOMs…), and theirs in turn, so that they are there offline.
        const withReferrers = [top, ...images.filter((manifest) => manifest.digest !== top.digest)];
        const seen = new Set(withReferrers.map((manifest) => manifest.digest));
        for (let next = 0; next < withReferrers.length; next++) {
          for (const referrer of await mirror.cacheReferrers(image.target, withReferrers[next]!.digest)) {
            if (seen.has(referrer.digest)) continue;
            seen.add(referrer.digest);
            withReferrers.push(referrer);
            images.push(referrer);
            manifests.add(referrer.digest);
          }
        }
        const blobs = new Map<string, number>();
        for (const manifest of images) {
          for (const blob of parseManifest(Buffer.from(manifest.payload), manifest.mediaType).blobs) {
            if (!isNonDistributableLayer(blob.mediaType)) blobs.set(blob.digest, blob.size);
          }
        }
        const total = [...blobs.values()].reduce((sum, size) => sum + size, 0);
        let done = 0;
        let fetched = 0;
        progress.progress(0, total);
        for (const [digest, size] of blobs) {
          const outcome = await mirror.cacheBlob(image.target, digest);
          if (outcome.fetched) fetched++;
          const known = blobsSeen.get(digest);
          blobsSeen.set(digest, { size: outcome.size, fetched: outcome.fetched || (known?.fetched ?? false) });
          done += size;
          progress.progress(done, total);
        }
        summary.images++;
        for (const digest of manifests) manifestsSeen.add(digest);
        progress.done({ blobs: blobs.size, fetched });
      } catch (error) {
        summary.failed.push({ image: label, reason: (error as Error).message });
        progress.done({ failed: (error as Error).message });
      }
    }
  }
  const all = [...blobsSeen.values()];
  const fetched = all.filter((blob) => blob.fetched);
  return {
    ...summary,
    manifests: manifestsSeen.size,
    blobs: all.length,
    bytes: all.reduce((sum, blob) => sum + blob.size, 0),
    blobsFetched: fetched.length,
    bytesFetched: fetched.reduce((sum, blob) => sum + blob.size, 0),
    blobsPresent: all.length - fetched.length,
  };
}
