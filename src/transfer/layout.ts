import { isValidTag, validateRepositoryName } from '../oci/names.js';
import { parseDigest } from '../oci/digest.js';

/** The annotation naming a reference in an OCI image layout's index.json. */
export const refNameAnnotation = 'org.opencontainers.image.ref.name';
/** Our own annotation: the repository an index.json entry belongs to, named as clients pull it (for referrers, which have no ref name). */
export const repositoryAnnotation = 'dev.oci-registry.repository';
/** For an image from a mirror cache: the upstream's name (as in mirror.upstreams) and its repository there. */
export const upstreamAnnotation = 'dev.oci-registry.upstream';
export const upstreamRepositoryAnnotation = 'dev.oci-registry.upstream.repository';
/** For a mirrored tag: when the exporting site last saw it upstream (ISO time). */
export const tagSeenAnnotation = 'dev.oci-registry.tag.seen';

/**
 * A file of ours beside the OCI layout (other tools ignore it): the bundle's id and time, and for an
 * incremental bundle, the bundle it was made after and the blobs it leaves out because that one (or
 * one before it) carried them.
 */
export const bundleDescriptionName = 'dev.oci-registry.bundle.json';

export interface BundleDescription {
  id: string;
  created: string;
  since: { id: string; created: string } | null;
  leftOut: string[];
}

export function parseBundleDescription(bytes: Buffer, file: string): BundleDescription {
  const parsed = JSON.parse(bytes.toString('utf8')) as Partial<BundleDescription>;
  if (typeof parsed.id !== 'string' || typeof parsed.created !== 'string' || !Array.isArray(parsed.leftOut)) {
    throw new Error(`${file}: ${bundleDescriptionName} is not a bundle description`);
  }
  return { id: parsed.id, created: parsed.created, since: parsed.since ?? null, leftOut: parsed.leftOut.map((digest) => parseDigest(String(digest)).value) };
}

export type ImageReference = { repository: string; tag: string; digest?: undefined } | { repository: string; digest: string; tag?: undefined };

/** `team/app:v1` or `team/app@sha256:…`; the repository name is validated. */
export function parseImageReference(text: string): ImageReference {
  const at = text.indexOf('@');
  if (at > 0) return { repository: validateRepositoryName(text.slice(0, at)), digest: parseDigest(text.slice(at + 1)).value };
  const colon = text.lastIndexOf(':');
  if (colon <= 0 || text.slice(colon + 1).includes('/')) throw new Error(`${JSON.stringify(text)}: expected NAME:TAG or NAME@DIGEST`);
  const tag = text.slice(colon + 1);
  if (!isValidTag(tag)) throw new Error(`${JSON.stringify(text)}: ${JSON.stringify(tag)} is not a valid tag`);
  return { repository: validateRepositoryName(text.slice(0, colon)), tag };
}

export function formatImageReference(reference: ImageReference): string {
  return reference.tag !== undefined ? `${reference.repository}:${reference.tag}` : `${reference.repository}@${reference.digest}`;
}

export function blobEntryName(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}
