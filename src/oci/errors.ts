/**
 * The error catalogue: every code the registry can answer with, its HTTP status and its message.
 * Handlers and services throw RegistryError; one middleware writes the OCI error envelope.
 */
export const errorCatalogue = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'invalid tag' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  NOT_FOUND: { status: 404, message: 'no such route' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  // Not in the OCI catalogue: the request body came too slowly (http.bodytimeout, http.bodyminrate).
  REQUEST_TIMEOUT: { status: 408, message: 'request body too slow' },
  // Not in the OCI catalogue: blob storage or the database has no space left for what was sent.
  INSUFFICIENT_STORAGE: { status: 507, message: 'insufficient storage' },
  // Not in the OCI catalogue: a query parameter that is not valid (given twice, or a bad value of the registry's own API, /api/v1).
  PARAMETER_INVALID: { status: 400, message: 'invalid query parameter' },
  // Not in the OCI catalogue: a request the registry cannot read (a token request's form or grant, another service named).
  REQUEST_INVALID: { status: 400, message: 'invalid request' },
  // Not in the OCI catalogue: a body larger than the endpoint takes (a manifest over 4 MiB, a token form).
  TOO_LARGE: { status: 413, message: 'request body too large' },
  // Not in the OCI catalogue: the registry's state does not allow it now (a manifest an index names, a garbage collection running).
  CONFLICT: { status: 409, message: 'the request conflicts with the state of the registry' },
  // Not in the OCI catalogue: an HTTP method no route knows.
  NOT_IMPLEMENTED: { status: 501, message: 'method not implemented' },
  // Not in the OCI catalogue: an account the registry's API names that does not exist.
  ACCOUNT_UNKNOWN: { status: 404, message: 'account unknown' },
  // Not in the OCI catalogue: a project the registry's API names that does not exist, or that the caller may not see.
  PROJECT_UNKNOWN: { status: 404, message: 'project unknown' },
  // Not in the OCI catalogue: a mirror chain that leads back to this registry (see Via).
  LOOP_DETECTED: { status: 508, message: 'request loop detected' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export interface RegistryErrorOptions {
  message?: string;
  detail?: unknown;
  headers?: Record<string, string>;
}

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, options: RegistryErrorOptions = {}) {
    super(options.message ?? errorCatalogue[code].message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }
}

export interface ErrorEnvelope {
  errors: Array<{ code: ErrorCode; message: string; detail?: unknown }>;
}

export function errorEnvelope(error: RegistryError): ErrorEnvelope {
  const entry: ErrorEnvelope['errors'][number] = { code: error.code, message: error.message };
  if (error.detail !== undefined) entry.detail = error.detail;
  return { errors: [entry] };
}

/** 400 PARAMETER_INVALID naming the parameter (and the value, cut short) in its message and detail. */
export function invalidParameter(parameter: string, message: string, value?: string): RegistryError {
  return new RegistryError('PARAMETER_INVALID', { message: `${parameter}: ${message}`, detail: { parameter, ...(value !== undefined ? { value: value.slice(0, 200) } : {}) } });
}
