import type { ByteRange } from '../storage/driver.js';
import { RegistryError } from '../oci/errors.js';

export type RangeRequest = { kind: 'whole' } | { kind: 'partial'; range: ByteRange } | { kind: 'unsatisfiable' };

/**
 * Interprets a `Range` header against an object of `size` bytes. Only one `bytes=` range is served;
 * a malformed header, another unit or several ranges are ignored (the whole object is sent), as RFC 9110 allows.
 */
export function interpretRangeHeader(header: string | undefined, size: number): RangeRequest {
  if (!header) return { kind: 'whole' };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return { kind: 'whole' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(size - suffix, 0), end: size - 1 } };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return { kind: 'whole' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', range: { start, end } };
}

/**
 * Parses an upload chunk's `Content-Range` (`<start>-<end>`, also accepted with a `bytes ` prefix
 * or a `/<total>` suffix). Absent → undefined; malformed → 400 BLOB_UPLOAD_INVALID.
 */
export function parseContentRange(header: string | undefined): ByteRange | undefined {
  if (header === undefined || header === '') return undefined;
  const match = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/.exec(header.trim());
  if (!match) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', { message: `malformed Content-Range ${JSON.stringify(header.slice(0, 100))}` });
  }
  return { start: Number(match[1]), end: Number(match[2]) };
}

/** A `Content-Length` header as a number; malformed → 400 SIZE_INVALID. */
export function parseContentLength(header: string | undefined): number | undefined {
  if (header === undefined || header === '') return undefined;
  if (!/^\d{1,15}$/.test(header)) {
    throw new RegistryError('SIZE_INVALID', { message: `malformed Content-Length ${JSON.stringify(header.slice(0, 100))}` });
  }
  return Number(header);
}
