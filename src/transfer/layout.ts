import { isValidTag, validateRepositoryName } from '../oci/names.js';
import { parseDigest } from '../oci/digest.js';

/** The annotation naming a reference in an OCI image layout's index.json. */
export const refNameAnnotation = 'org.opencontainers.image.ref.name';
/** Our own annotation: the repository an index.json entry belongs to (for referrers, which have no ref name). */
export const repositoryAnnotation = 'dev.oci-registry.repository';

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
