import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { BlobDescriptor } from './oci-layout.js';
import { rawRequest } from './raw-http.js';

const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Pushes a small OCI artifact whose subject is `subject` (a signature, say), monolithically. */
export async function pushSignature(port: number, repository: string, subject: BlobDescriptor): Promise<string> {
  const empty = Buffer.from('{}');
  const upload = await rawRequest(port, 'POST', `/v2/${repository}/blobs/uploads/?digest=${sha256(empty)}`, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(empty.length) },
    body: empty,
  });
  assert.equal(upload.status, 201);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.signature',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    }),
  );
  const put = await rawRequest(port, 'PUT', `/v2/${repository}/manifests/${sha256(manifest)}`, {
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  assert.equal(put.status, 201);
  return sha256(manifest);
}
