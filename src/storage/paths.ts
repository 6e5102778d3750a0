import type { Digest } from '../oci/digest.js';

/**
 * Every key the registry writes to blob storage comes from here.
 *
 *   blobs/<algorithm>/<first two hex>/<hex>/data   content-addressed bytes, shared by all repositories
 *   uploads/<upload id>/data                       bytes of an upload in progress
 */
export const storagePaths = {
  blobData(digest: Digest): string {
    return `blobs/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}/data`;
  },
  uploadsRoot: 'uploads',
  uploadDirectory(uploadId: string): string {
    return `uploads/${uploadId}`;
  },
  uploadData(uploadId: string): string {
    return `uploads/${uploadId}/data`;
  },
} as const;
