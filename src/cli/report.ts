/** How the transfer commands (mirror sync, export, import) word their figures. */

const units = ['KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 512 B, 3.4 KiB, 12.0 MiB, 1.5 GiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** `1 image`, `2 images`; `1 blob already cached`. */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : pluralNoun}`;
}

/**
 * What a bundle or a sync list consists of, counted the same way by all three commands: the images
 * named (tags and digests asked for), the distinct manifests (indexes, their children, referrers),
 * the distinct blobs (configs and layers) and those blobs' total size.
 */
export interface ContentCounts {
  images: number;
  manifests: number;
  blobs: number;
  bytes: number;
}

export function describeContent(counts: ContentCounts): string {
  return `${plural(counts.images, 'image')}: ${plural(counts.manifests, 'manifest')}, ${plural(counts.blobs, 'blob')} (${formatBytes(counts.bytes)})`;
}
