import { findReferrers } from '../metadata/manifests.js';
import { findRepository } from '../metadata/repositories.js';
import { parseDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { mediaTypes } from '../oci/media-types.js';
import type { RegistryStores } from './context.js';

export interface ReferrersIndex {
  schemaVersion: 2;
  mediaType: typeof mediaTypes.ociIndex;
  manifests: Descriptor[];
}

function annotationsOf(payload: Uint8Array): Record<string, string> | undefined {
  const parsed = JSON.parse(Buffer.from(payload).toString('utf8')) as { annotations?: Record<string, string> };
  return parsed.annotations && Object.keys(parsed.annotations).length > 0 ? parsed.annotations : undefined;
}

/** The referrers API's answer: an OCI index of the descriptors, filtered by artifactType when one is given. */
export function referrersIndex(descriptors: Descriptor[], artifactType?: string): ReferrersIndex {
  return {
    schemaVersion: 2,
    mediaType: mediaTypes.ociIndex,
    manifests: artifactType ? descriptors.filter((descriptor) => descriptor.artifactType === artifactType) : descriptors,
  };
}

/** The referrers API: an OCI index of the manifests whose subject is a digest. */
export class ReferrersService {
  constructor(private readonly stores: RegistryStores) {}

  async list(repository: string, digestText: string, artifactType?: string): Promise<ReferrersIndex> {
    const digest = parseDigest(digestText);
    const repositoryRow = await findRepository(this.stores.metadata, repository);
    const rows = repositoryRow ? await findReferrers(this.stores.metadata, repositoryRow.id, digest.value, artifactType) : [];
    return referrersIndex(
      rows.map((row) => {
        const annotations = annotationsOf(row.payload);
        return {
          mediaType: row.mediaType,
          digest: row.digest,
          size: row.size,
          ...(row.artifactType ? { artifactType: row.artifactType } : {}),
          ...(annotations ? { annotations } : {}),
        };
      }),
    );
  }
}
