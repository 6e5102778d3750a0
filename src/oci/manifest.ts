import { parseDigest } from './digest.js';
import { RegistryError } from './errors.js';
import {
  isIndexMediaType,
  isManifestMediaType,
  mediaTypes,
  type ManifestMediaType,
} from './media-types.js';

/** Largest manifest accepted, as in Distribution. */
export const maxManifestBytes = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string; variant?: string };
  urls?: string[];
}

export interface ParsedManifest {
  mediaType: ManifestMediaType;
  /** Config and layers of an image manifest; empty for an index. */
  blobs: Descriptor[];
  /** Child manifests of an index; empty for an image manifest. */
  manifests: Descriptor[];
  /** The artifactType field, or for an image manifest without one the config's media type (OCI 1.1). */
  artifactType: string | null;
  subject: Descriptor | null;
  annotations: Record<string, string> | null;
}

/** A media type as RFC 6838 writes one: type/subtype, each a restricted name of at most 127 characters. */
const mediaTypePattern = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

function artifactTypeOf(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid(`${where} must be a string`);
  if (!mediaTypePattern.test(value)) throw invalid(`${where} ${JSON.stringify(value.slice(0, 100))} is not a media type (type/subtype, RFC 6838)`);
  return value;
}

function invalid(message: string): RegistryError {
  return new RegistryError('MANIFEST_INVALID', { message: `manifest invalid: ${message}` });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || Object.values(value).some((entry) => typeof entry !== 'string')) {
    throw invalid(`${where} must be a map of strings`);
  }
  return value as Record<string, string>;
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, artifactType, urls, platform } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}.mediaType is required`);
  if (typeof digest !== 'string') throw invalid(`${where}.digest is required`);
  try {
    parseDigest(digest);
  } catch {
    throw invalid(`${where}.digest ${JSON.stringify(digest.slice(0, 150))} is not a valid digest`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  artifactTypeOf(artifactType, `${where}.artifactType`);
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((url) => typeof url !== 'string'))) throw invalid(`${where}.urls must be strings`);
  if (platform !== undefined && !isRecord(platform)) throw invalid(`${where}.platform must be an object`);
  const annotations = stringMap(value.annotations, `${where}.annotations`);
  return {
    mediaType,
    digest,
    size,
    ...(typeof artifactType === 'string' ? { artifactType } : {}),
    ...(annotations ? { annotations } : {}),
    ...(platform ? { platform: platform as Descriptor['platform'] } : {}),
    ...(urls ? { urls: urls as string[] } : {}),
  };
}

function descriptorList(value: unknown, where: string): Descriptor[] {
  if (!Array.isArray(value)) throw invalid(`${where} must be a list`);
  return value.map((entry, index) => descriptor(entry, `${where}[${index}]`));
}

/**
 * The media type a pushed manifest has: the Content-Type when it names a manifest type, else the
 * body's mediaType field, else its shape (OCI manifests may leave mediaType out).
 */
function resolveMediaType(contentType: string | undefined, body: Record<string, unknown>): ManifestMediaType {
  const declared = contentType?.split(';')[0]?.trim().toLowerCase();
  const field = body.mediaType;
  if (field !== undefined && typeof field !== 'string') throw invalid('mediaType must be a string');
  if (declared === mediaTypes.dockerSchema1 || declared === mediaTypes.dockerSchema1Signed || body.schemaVersion === 1) {
    throw invalid('Docker schema 1 manifests are not supported; push schema 2 or OCI');
  }
  if (declared && isManifestMediaType(declared)) {
    if (field !== undefined && field !== declared) {
      throw invalid(`mediaType ${JSON.stringify(field)} does not match Content-Type ${declared}`);
    }
    return declared;
  }
  if (typeof field === 'string') {
    if (!isManifestMediaType(field)) throw invalid(`unsupported manifest media type ${JSON.stringify(field.slice(0, 100))}`);
    return field;
  }
  if ('manifests' in body) return mediaTypes.ociIndex;
  if ('config' in body) return mediaTypes.ociManifest;
  throw invalid('cannot tell the manifest type: no Content-Type, mediaType, config or manifests');
}

/** Parses and validates manifest bytes as pushed; any problem is MANIFEST_INVALID. */
export function parseManifest(payload: Uint8Array, contentType: string | undefined): ParsedManifest {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw invalid('not valid JSON');
  }
  if (!isRecord(body)) throw invalid('must be a JSON object');
  const mediaType = resolveMediaType(contentType, body);
  if (body.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  const declaredArtifactType = artifactTypeOf(body.artifactType, 'artifactType') ?? null;
  const subject = body.subject === undefined ? null : descriptor(body.subject, 'subject');
  const annotations = stringMap(body.annotations, 'annotations') ?? null;

  if (isIndexMediaType(mediaType)) {
    if ('config' in body || 'layers' in body) throw invalid('an index has no config or layers');
    return {
      mediaType,
      blobs: [],
      manifests: descriptorList(body.manifests, 'manifests'),
      artifactType: declaredArtifactType,
      subject,
      annotations,
    };
  }
  if ('manifests' in body) throw invalid('an image manifest has no manifests list');
  const config = descriptor(body.config, 'config');
  const layers = body.layers === undefined && mediaType === mediaTypes.ociManifest ? [] : descriptorList(body.layers, 'layers');
  return {
    mediaType,
    blobs: [config, ...layers],
    manifests: [],
    artifactType: declaredArtifactType ?? (mediaType === mediaTypes.ociManifest ? config.mediaType : null),
    subject,
    annotations,
  };
}

/**
 * Refuses a descriptor whose size is not the size of the content it names, where the registry holds
 * that content (`held`: sizes by digest): a client trusting the size would wait for bytes that never
 * come, or allocate for them.
 */
export function requireTrueSizes(descriptors: readonly Descriptor[], held: ReadonlyMap<string, number>): void {
  for (const entry of descriptors) {
    const size = held.get(entry.digest);
    if (size !== undefined && size !== entry.size) {
      throw new RegistryError('MANIFEST_INVALID', {
        message: `manifest invalid: the descriptor of ${entry.digest} gives ${entry.size} bytes; it holds ${size}`,
        detail: { digest: entry.digest, size: entry.size, actual: size },
      });
    }
  }
}
