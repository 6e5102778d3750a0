import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json(): unknown;
}

/**
 * One HTTP request with the path sent exactly as given (no URL normalisation), and a body that may be
 * a buffer (Content-Length) or a stream (chunked unless a Content-Length header is set).
 */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  options: { headers?: OutgoingHttpHeaders; body?: Buffer | Readable } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, method, path, headers: options.headers ?? {}, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body,
          json: () => JSON.parse(body.toString('utf8')) as unknown,
        });
      });
    });
    outgoing.on('error', reject);
    const { body } = options;
    if (body === undefined) outgoing.end();
    else if (Buffer.isBuffer(body)) outgoing.end(body);
    else body.pipe(outgoing);
  });
}

/** The first error code of an OCI error envelope. */
export function errorCode(body: unknown): string | undefined {
  return (body as { errors?: Array<{ code?: string }> })?.errors?.[0]?.code;
}
