import { parseDigest, type Digest } from './digest.js';
import { RegistryError } from './errors.js';
import { validateTag } from './names.js';

/** The last part of a manifest path: a tag or a digest. */
export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

/** A reference with a colon is a digest (DIGEST_INVALID if malformed); anything else must be a valid tag. */
export function parseManifestReference(text: string): ManifestReference {
  if (text.includes(':')) return { kind: 'digest', digest: parseDigest(text) };
  return { kind: 'tag', tag: validateTag(text) };
}

/**
 * The reference of a GET or HEAD: one that is neither a valid tag nor a valid digest names no manifest
 * that could exist, so it is 404 MANIFEST_UNKNOWN (as the OCI conformance suite and Distribution answer),
 * decided before any store is asked. Writes keep the 400 of `parseManifestReference`.
 */
export function parseLookupReference(text: string): ManifestReference {
  try {
    return parseManifestReference(text);
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error;
    throw new RegistryError('MANIFEST_UNKNOWN', {
      message: `no manifest can have this reference (${error.message})`,
      detail: { reference: text.slice(0, 200) },
    });
  }
}
