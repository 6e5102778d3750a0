import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.js';
import type { ChunkDescription } from '../registry/uploads.js';
import type { RegistryContext } from './context.js';
import { parseContentLength, parseContentRange } from './range.js';

/** One query parameter; repeated → 400 with the given code. */
export function queryParameter(ctx: RegistryContext, key: string): string | undefined {
  const value = ctx.query[key];
  if (Array.isArray(value)) {
    throw new RegistryError(key === 'digest' || key === 'mount' ? 'DIGEST_INVALID' : 'UNSUPPORTED', {
      status: 400,
      message: `query parameter ${key} given more than once`,
    });
  }
  return value;
}

/** The request body stream, or null when the request announces none. */
export function requestBody(ctx: RegistryContext): Readable | null {
  const length = ctx.get('content-length');
  const chunked = ctx.get('transfer-encoding') !== '';
  if (!chunked && (length === '' || length === '0')) return null;
  return ctx.req;
}

export function chunkDescription(ctx: RegistryContext): ChunkDescription {
  const range = parseContentRange(ctx.get('content-range') || undefined);
  const length = parseContentLength(ctx.get('content-length') || undefined);
  return { ...(range ? { range } : {}), ...(length !== undefined ? { length } : {}) };
}

/** A path segment that cannot hold a slash or a name: percent-decoded, then validated by the caller. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** An empty response with the given status (Koa would otherwise write its status text as the body). */
export function respondEmpty(ctx: RegistryContext, status: number): void {
  ctx.status = status;
  if (status !== 204) {
    ctx.body = '';
    ctx.remove('Content-Type');
  }
}
