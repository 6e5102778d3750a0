import { Agent, request } from 'node:http';
import { commandAvailable, run } from '../helpers/tools.js';

export interface LoadResult {
  requests: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
  /** What generated the load: wrk (C, when installed) or the Node client below. */
  generator: 'wrk' | 'node';
}

export interface LoadOptions {
  port: number;
  path: string;
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
}

/** wrk's durations: 812.00us, 1.23ms, 2.01s. */
function wrkMilliseconds(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return NaN;
  const factor = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(match[1]) * factor;
}

/**
 * The load generator the bench uses: wrk (one thread) when the machine has it, since a generator in
 * Node takes about as much CPU as the server it measures; the Node client otherwise.
 */
export async function measureLoad(options: LoadOptions): Promise<LoadResult> {
  if (!commandAvailable('wrk')) return loadTest(options);
  const headers = Object.entries(options.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  const { stdout } = await run('wrk', ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency', ...headers, `http://127.0.0.1:${options.port}${options.path}`], {
    timeoutMs: (options.seconds + 30) * 1000,
  });
  const requests = Number(/(\d+) requests in ([\d.]+)(\w+)/.exec(stdout)?.[1]);
  const perSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const failures = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) + Number(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)?.slice(1).reduce((sum, value) => sum + Number(value), 0) ?? 0);
  const percentileOf = (label: string) => wrkMilliseconds(new RegExp(`^\\s+${label}%\\s+(\\S+)`, 'm').exec(stdout)?.[1] ?? '');
  return { requests, seconds: requests / perSecond, perSecond, p50Ms: percentileOf('50'), p99Ms: percentileOf('99'), failures, generator: 'wrk' };
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

/**
 * `connections` keep-alive connections each sending GETs back to back for `seconds` (and at most
 * `maxRequests` in all): a closed loop, so latency and throughput are both meaningful.
 */
export async function loadTest(options: LoadOptions & { maxRequests?: number }): Promise<LoadResult> {
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
    generator: 'node',
  };
}
