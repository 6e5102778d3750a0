import assert from 'node:assert/strict';
import type supertest from 'supertest';
import type { TestBlob } from './blobs.js';

/** Pushes a blob the way docker, podman and skopeo do: POST, one PATCH with all bytes, PUT ?digest=. */
export async function pushBlob(request: supertest.Agent, repository: string, blob: TestBlob): Promise<void> {
  const started = await request.post(`/v2/${repository}/blobs/uploads/`).expect(202);
  const location = started.headers.location as string;
  await request.patch(location).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(202);
  const done = await request.put(`${location}?digest=${blob.digest}`).expect(201);
  assert.equal(done.headers['docker-content-digest'], blob.digest);
}

export function envelopeCode(response: { body: unknown }): string | undefined {
  const body = Buffer.isBuffer(response.body) ? (JSON.parse(response.body.toString('utf8')) as unknown) : response.body;
  return (body as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
}

export function errorMessage(response: { body: unknown }): string {
  const body = Buffer.isBuffer(response.body) ? (JSON.parse(response.body.toString('utf8')) as unknown) : response.body;
  return (body as { errors?: Array<{ message?: string }> }).errors?.[0]?.message ?? '';
}

type ResponseParser = Parameters<supertest.Test['parse']>[0];

/** A supertest parser that keeps any response body as a Buffer. */
export const binary = ((response: NodeJS.ReadableStream, callback: (error: Error | null, body: Buffer) => void): void => {
  const chunks: Buffer[] = [];
  response.on('data', (chunk: Buffer) => chunks.push(chunk));
  response.on('end', () => callback(null, Buffer.concat(chunks)));
  response.on('error', (error: Error) => callback(error, Buffer.alloc(0)));
  // superagent declares its own response type here; at run time the parser is handed the Node stream.
}) as unknown as ResponseParser;
