import { createHash } from 'node:crypto';
import type supertest from 'supertest';
import { testBlob, type TestBlob } from './blobs.js';
import { pushBlob } from './push.js';

export const ociManifestType = 'application/vnd.oci.image.manifest.v1+json';
export const ociIndexType = 'application/vnd.oci.image.index.v1+json';
export const dockerManifestType = 'application/vnd.docker.distribution.manifest.v2+json';
export const dockerListType = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const allManifestTypes = [ociManifestType, ociIndexType, dockerManifestType, dockerListType].join(', ');

export interface TestManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  blobs: TestBlob[];
}

export function sha256Of(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function manifestOf(body: unknown, mediaType: string, blobs: TestBlob[] = []): TestManifest {
  const bytes = Buffer.from(JSON.stringify(body, null, 2));
  return { bytes, digest: sha256Of(bytes), mediaType, blobs };
}

/** An image manifest (OCI or Docker schema 2) over a fresh config (unless given) and layer; the blobs are not pushed. */
export function imageManifest(options: { docker?: boolean; annotations?: Record<string, string>; layerSize?: number; config?: TestBlob } = {}): TestManifest {
  const config = options.config ?? testBlob(200);
  const layer = testBlob(options.layerSize ?? 3000);
  const docker = options.docker ?? false;
  const mediaType = docker ? dockerManifestType : ociManifestType;
  return manifestOf(
    {
      schemaVersion: 2,
      mediaType,
      config: {
        mediaType: docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
        digest: config.digest,
        size: config.bytes.length,
      },
      layers: [
        {
          mediaType: docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: layer.digest,
          size: layer.bytes.length,
        },
      ],
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    mediaType,
    [config, layer],
  );
}

export function indexOf(children: Array<{ manifest: TestManifest; architecture: string }>, docker = false): TestManifest {
  const mediaType = docker ? dockerListType : ociIndexType;
  return manifestOf(
    {
      schemaVersion: 2,
      mediaType,
      manifests: children.map(({ manifest, architecture }) => ({
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.bytes.length,
        platform: { architecture, os: 'linux' },
      })),
    },
    mediaType,
  );
}

/** An OCI image manifest over fresh blobs whose subject is `subject` (a signature, an SBOM…); the blobs are not pushed. */
export function referrerOf(subject: TestManifest, artifactType?: string): TestManifest {
  const artifact = imageManifest();
  const body = {
    ...(JSON.parse(artifact.bytes.toString()) as Record<string, unknown>),
    ...(artifactType ? { artifactType } : {}),
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
  };
  return manifestOf(body, ociManifestType, artifact.blobs);
}

/**
 * Pushes the manifest's blobs, then the manifest; checks the status (201 unless told). Manifests go
 * as strings: superagent would serialise a Buffer under a JSON content type.
 */
export async function pushManifest(
  request: supertest.Agent,
  repository: string,
  reference: string,
  manifest: TestManifest,
  expectedStatus = 201,
): Promise<supertest.Response> {
  for (const blob of manifest.blobs) await pushBlob(request, repository, blob);
  return request.put(`/v2/${repository}/manifests/${reference}`).set('Content-Type', manifest.mediaType).send(manifest.bytes.toString('utf8')).expect(expectedStatus);
}
