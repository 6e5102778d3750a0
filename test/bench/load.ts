import { Agent, request } from 'node:http';

export interface LoadResult {
  requests: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

/**
 * `connections` keep-alive connections each sending GETs back to back for `seconds` (and at most
 * `maxRequests` in all): a closed loop, so latency and throughput are both meaningful.
 */
export async function loadTest(options: {
  port: number;
  path: string;
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
  maxRequests?: number;
}): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const latencies: number[] = [];
  let failures = 0;
  const deadline = Date.now() + options.seconds * 1000;
  const cap = options.maxRequests ?? Number.POSITIVE_INFINITY;
  const started = process.hrtime.bigint();
  const once = () =>
    new Promise<void>((resolve) => {
      const sent = process.hrtime.bigint();
      const outgoing = request({ host: '127.0.0.1', port: options.port, path: options.path, headers: options.headers ?? {}, agent }, (response) => {
        response.resume();
        response.on('end', () => {
          if (response.statusCode !== 200) failures++;
          latencies.push(Number(process.hrtime.bigint() - sent) / 1e6);
          resolve();
        });
      });
      outgoing.on('error', () => {
        failures++;
        resolve();
      });
      outgoing.end();
    });
  let issued = 0;
  await Promise.all(
    Array.from({ length: options.connections }, async () => {
      while (Date.now() < deadline && issued < cap) {
        issued++;
        await once();
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    seconds,
    perSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    failures,
  };
}
