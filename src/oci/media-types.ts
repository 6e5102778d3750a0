/** Media types the registry understands. */
export const mediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type ManifestMediaType =
  | typeof mediaTypes.ociManifest
  | typeof mediaTypes.ociIndex
  | typeof mediaTypes.dockerManifest
  | typeof mediaTypes.dockerManifestList;

export const manifestMediaTypes: readonly ManifestMediaType[] = [
  mediaTypes.ociManifest,
  mediaTypes.ociIndex,
  mediaTypes.dockerManifest,
  mediaTypes.dockerManifestList,
];

export function isManifestMediaType(value: string): value is ManifestMediaType {
  return (manifestMediaTypes as readonly string[]).includes(value);
}

export function isIndexMediaType(value: string): boolean {
  return value === mediaTypes.ociIndex || value === mediaTypes.dockerManifestList;
}

/**
 * Layers that registries need not hold (Windows base layers and the like): a manifest may name them
 * without the registry having the bytes.
 */
export function isNonDistributableLayer(value: string): boolean {
  return value.startsWith('application/vnd.docker.image.rootfs.foreign.') || value.includes('.nondistributable.');
}

/** The media types listed in Accept headers, without parameters. */
export function acceptedMediaTypes(acceptHeaders: string | string[] | undefined): Set<string> {
  const values = Array.isArray(acceptHeaders) ? acceptHeaders : acceptHeaders ? [acceptHeaders] : [];
  const accepted = new Set<string>();
  for (const header of values) {
    for (const part of header.split(',')) {
      const type = part.split(';')[0]?.trim().toLowerCase();
      if (type) accepted.add(type);
    }
  }
  return accepted;
}
