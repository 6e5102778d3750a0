import type { Readable } from 'node:stream';
import { invalidParameter, RegistryError } from '../oci/errors.js';
import type { ChunkDescription } from '../registry/uploads.js';
import type { RegistryContext } from './context.js';
import { anonymousActor, type RequestOrigin } from '../audit/settings.js';
import { parseContentLength, parseContentRange } from './range.js';

/** One query parameter; repeated → 400 with the given code. */
export function queryParameter(ctx: RegistryContext, key: string): string | undefined {
  const value = ctx.query[key];
  if (Array.isArray(value)) {
    throw new RegistryError(key === 'digest' || key === 'mount' ? 'DIGEST_INVALID' : key === 'n' ? 'PAGINATION_NUMBER_INVALID' : 'PARAMETER_INVALID', {
      message: `query parameter ${key} given more than once`,
      detail: { parameter: key },
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

/**
 * Reads a manifest body whole, refusing more than `maxBytes` (by Content-Length before reading, or
 * while reading) with 413.
 */
export function readManifestBody(ctx: RegistryContext, maxBytes: number): Promise<Buffer> {
  return readSmallBody(ctx, maxBytes, () => new RegistryError('TOO_LARGE', { message: `manifest is larger than ${maxBytes} bytes` }));
}

/** Reads a small request body whole; more than `maxBytes` (announced or received) throws `tooLarge()`. */
export async function readSmallBody(ctx: RegistryContext, maxBytes: number, tooLarge: () => RegistryError): Promise<Buffer> {
  const announced = parseContentLength(ctx.get('content-length') || undefined);
  if (announced !== undefined && announced > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of ctx.req) {
    received += (chunk as Buffer).length;
    if (received > maxBytes) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * A small JSON object body of the registry's API: more than `maxBytes`, no JSON, not an object, or a
 * field not in `allowed` is 400 PARAMETER_INVALID naming the body and `expected`.
 */
export async function readJsonObject(ctx: RegistryContext, maxBytes: number, allowed: readonly string[], expected: string): Promise<Record<string, unknown>> {
  const body = await readSmallBody(ctx, maxBytes, () => invalidParameter('body', `larger than ${maxBytes} bytes`));
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalidParameter('body', `expected JSON: ${expected}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidParameter('body', `expected JSON: ${expected}`);
  const fields = parsed as Record<string, unknown>;
  const unknown = Object.keys(fields).find((key) => !allowed.includes(key));
  if (unknown !== undefined) throw invalidParameter('body', `unknown field ${JSON.stringify(unknown.slice(0, 40))} (${allowed.join(', ')})`);
  return fields;
}

/** `n` and `last` of a paginated listing; a bad `n` is 400 PAGINATION_NUMBER_INVALID. */
export function pagination(ctx: RegistryContext): { limit?: number; last?: string } {
  const n = queryParameter(ctx, 'n');
  const last = queryParameter(ctx, 'last');
  let limit: number | undefined;
  if (n !== undefined && n !== '') {
    if (!/^\d{1,9}$/.test(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID', { detail: { n: n.slice(0, 50) } });
    limit = Number(n);
  }
  return { ...(limit !== undefined ? { limit } : {}), ...(last ? { last } : {}) };
}

/** The page size a listing answers with: `n`, or the default, kept within 1 and the maximum. */
export function pageSizeOf(ctx: RegistryContext, sizes: { default: number; max: number }): number {
  const { limit = sizes.default } = pagination(ctx);
  return Math.min(Math.max(limit, 1), sizes.max);
}

/**
 * Sets the RFC 5988 `Link` to the next page of a listing: this path, the query parameters named in
 * `keep` (the filters that said what is listed; `all` for every one), then `n` and `last`.
 */
export function setNextPageLink(ctx: RegistryContext, page: { limit: number; last: string; keep: readonly string[] | 'all' }): void {
  const next = new URLSearchParams();
  const query = new URLSearchParams(ctx.querystring);
  for (const [key, value] of query) {
    if (key !== 'n' && key !== 'last' && value !== '' && (page.keep === 'all' || page.keep.includes(key))) next.append(key, value);
  }
  next.set('n', String(page.limit));
  next.set('last', page.last);
  ctx.set('Link', `<${ctx.path}?${next.toString()}>; rel="next"`);
}

/** Who sent the request, for the audit events it causes: the account, how it was proven, from where. */
export function requestOrigin(ctx: RegistryContext): RequestOrigin {
  const account = ctx.state.grant?.account ?? '';
  return {
    actor: account !== '' ? account : anonymousActor,
    authMethod: ctx.state.grant?.method ?? 'none',
    // ctx.ip honours X-Forwarded-For only with http.trustproxy (Koa's proxy setting).
    address: ctx.ip ? ctx.ip.slice(0, 64) : null,
    userAgent: ctx.get('user-agent') ? ctx.get('user-agent').slice(0, 512) : null,
    requestId: ctx.state.requestId,
    host: ctx.host || null,
    method: ctx.method,
    scheme: ctx.protocol,
  };
}
