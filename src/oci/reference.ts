import { parseDigest, type Digest } from './digest.js';
import { validateTag } from './names.js';

/** The last part of a manifest path: a tag or a digest. */
export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

/** A reference with a colon is a digest (DIGEST_INVALID if malformed); anything else must be a valid tag. */
export function parseManifestReference(text: string): ManifestReference {
  if (text.includes(':')) return { kind: 'digest', digest: parseDigest(text) };
  return { kind: 'tag', tag: validateTag(text) };
}
