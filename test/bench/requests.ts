import { rawRequest } from '../helpers/raw-http.js';

/** What the benchmarks that fill a registry share: one checked request, a median, many clients at once. */

/** A request that must answer `expected`; its headers. */
export async function send(port: number, method: string, requestPath: string, expected: number, body?: Buffer, contentType?: string): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = body ? { 'Content-Type': contentType ?? 'application/octet-stream', 'Content-Length': String(body.length) } : {};
  const response = await rawRequest(port, method, requestPath, { headers, ...(body ? { body } : {}) });
  if (response.status !== expected) throw new Error(`${method} ${requestPath} answered ${response.status}: ${response.body.toString().slice(0, 300)}`);
  return response.headers;
}

/** The median duration of `times` runs of `body`, in ms. */
export async function medianMs(times: number, body: () => Promise<unknown>): Promise<number> {
  const values: number[] = [];
  for (let round = 0; round < times; round++) {
    const started = process.hrtime.bigint();
    await body();
    values.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return values.sort((a, b) => a - b)[Math.floor(times / 2)]!;
}

/** `count` jobs taken in turn by `clients` clients at once; the seconds they took. */
export async function byClients(count: number, clients: number, job: (index: number) => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < count) await job(next++);
    }),
  );
  return Number(process.hrtime.bigint() - started) / 1e9;
}
