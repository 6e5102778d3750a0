/** CNCF Distribution (registry:2) as a peer: benchmarks measure it, tests read what it wrote. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from './ports.js';
import { rawRequest } from './raw-http.js';
import { projectRoot } from './server-process.js';

/**
 * Distribution 2.8.3 for tests: REGISTRY_TEST_DISTRIBUTION, REGISTRY_BENCH_DISTRIBUTION, or
 * ../shared/tools/distribution-registry beside the project. Under CI a test that needs it fails
 * rather than skips when it is missing.
 */
export function distributionForTests(): { binary: string; skip: string | undefined } {
  const binary = process.env.REGISTRY_TEST_DISTRIBUTION || process.env.REGISTRY_BENCH_DISTRIBUTION || path.resolve(projectRoot, '../shared/tools/distribution-registry');
  if (existsSync(binary)) return { binary, skip: undefined };
  const why = `CNCF Distribution is not at ${binary} (set REGISTRY_TEST_DISTRIBUTION)`;
  if (process.env.CI) throw new Error(`CI must run the tests against Distribution: ${why}`);
  return { binary, skip: why };
}

export interface RunningDistribution {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Distribution on a free port (or `port`) with filesystem storage at `root` (by default
 * `directory/distribution-storage`), access log off, deletes on; its config file is written into `directory`.
 */
export async function startDistribution(binary: string, directory: string, options: { root?: string; port?: number } = {}): Promise<RunningDistribution> {
  const port = options.port ?? (await freePort());
  const config = path.join(directory, 'distribution.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${JSON.stringify(options.root ?? path.join(directory, 'distribution-storage'))} }, delete: { enabled: true } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  for (let attempt = 0; ; attempt++) {
    const answer = await rawRequest(port, 'GET', '/v2/').catch(() => null);
    if (answer?.status === 200) break;
    if (attempt > 100 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`Distribution did not start: ${stderr.slice(-1000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    port,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

