import { RegistryError } from '../oci/errors.js';
import { parseManifest } from '../oci/manifest.js';
import { mediaTypes } from '../oci/media-types.js';

export interface ManifestContent {
  digest: string;
  mediaType: string;
  size: number;
  payload: Uint8Array;
}

/** The platform a manifest list is resolved to for a client that does not accept lists (as Distribution). */
const defaultPlatform = { os: 'linux', architecture: 'amd64' };

export function manifestUnknown(reference: string, message?: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', { ...(message ? { message } : {}), detail: { reference: reference.slice(0, 200) } });
}

/**
 * The manifest a GET or HEAD answers with, negotiated against the client's Accept list as
 * Distribution does: OCI types need to be accepted; a manifest list asked for by tag by a client
 * that does not accept lists is answered with its linux/amd64 image, found by `findChild`.
 */
export async function negotiateManifest(
  found: ManifestContent,
  referenceText: string,
  byTag: boolean,
  accepted: Set<string>,
  findChild: (digest: string) => Promise<ManifestContent | undefined>,
): Promise<ManifestContent> {
  if (found.mediaType === mediaTypes.ociManifest && !accepted.has(mediaTypes.ociManifest)) {
    throw manifestUnknown(referenceText, 'OCI manifest found, but the Accept header does not support OCI manifests');
  }
  if (found.mediaType === mediaTypes.ociIndex && !accepted.has(mediaTypes.ociIndex)) {
    throw manifestUnknown(referenceText, 'OCI index found, but the Accept header does not support OCI indexes');
  }
  if (!byTag || found.mediaType !== mediaTypes.dockerManifestList || accepted.has(mediaTypes.dockerManifestList)) return found;
  const { manifests } = parseManifest(Buffer.from(found.payload), found.mediaType);
  const match = manifests.find(
    (child) => child.platform?.os === defaultPlatform.os && child.platform?.architecture === defaultPlatform.architecture,
  );
  const child = match ? await findChild(match.digest) : undefined;
  if (!child) throw manifestUnknown(referenceText, 'manifest list has no linux/amd64 image and the client does not accept lists');
  if (child.mediaType === mediaTypes.dockerManifest && !accepted.has(mediaTypes.dockerManifest)) {
    throw new RegistryError('MANIFEST_INVALID', { message: 'Schema 2 manifest not supported by client' });
  }
  return child;
}
