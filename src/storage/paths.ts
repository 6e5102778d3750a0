import { parseDigest, type Digest } from '../oci/digest.js';

/**
 * Every key the registry writes to blob storage comes from here.
 *
 *   blobs/<algorithm>/<first two hex>/<hex>/data   content-addressed bytes, shared by all repositories
 *   uploads/<upload id>/data                       bytes of an upload in progress
 *   repositories/<name>/_manifests/<alg>/<hex>     a manifest the repository holds (its media type, JSON);
 *                                                  the manifest bytes are a blob under blobs/
 *   repositories/<name>/_tags/<tag>                the digest a tag points at
 *
 * Repository names cannot hold a component starting with `_`, so these never collide with a name.
 */
export const storagePaths = {
  blobData(digest: Digest): string {
    return `blobs/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}/data`;
  },
  /** The other way: `blobs/sha256/ab/abcdef…/data` → `sha256:abcdef…`, or null for any other key. */
  blobDigestOf(key: string): string | null {
    const match = /^blobs\/([a-z0-9]+)\/[a-f0-9]{2}\/([a-f0-9]+)\/data$/.exec(key);
    if (!match) return null;
    try {
      const digest = parseDigest(`${match[1]}:${match[2]}`);
      return storagePaths.blobData(digest) === key ? digest.value : null;
    } catch {
      return null;
    }
  },
  uploadsRoot: 'uploads',
  uploadDirectory(uploadId: string): string {
    return `uploads/${uploadId}`;
  },
  uploadData(uploadId: string): string {
    return `uploads/${uploadId}/data`;
  },
  repositoriesRoot: 'repositories',
  repositoryManifest(repository: string, digest: Digest): string {
    return `repositories/${repository}/_manifests/${digest.algorithm}/${digest.hex}`;
  },
  repositoryTag(repository: string, tag: string): string {
    return `repositories/${repository}/_tags/${tag}`;
  },
} as const;
