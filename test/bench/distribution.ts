/**
 * CNCF Distribution beside this registry in a benchmark, on the same machine and the same data:
 * `REGISTRY_BENCH_DISTRIBUTION` names its binary (../shared/tools/distribution-registry here).
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../helpers/ports.js';
import { rawRequest } from '../helpers/raw-http.js';
import { run } from '../helpers/tools.js';

export interface RunningDistribution {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** The binary to compare with, or undefined (with the reason printed) when none is named or it is not there. */
export function distributionBinary(): string | undefined {
  const binary = process.env.REGISTRY_BENCH_DISTRIBUTION;
  if (!binary) console.log('Distribution side by side: skipped (set REGISTRY_BENCH_DISTRIBUTION to its binary)');
  return binary || undefined;
}

/** Distribution on a free port with filesystem storage under `directory`, access log off, deletes on. */
export async function startDistribution(binary: string, directory: string): Promise<RunningDistribution> {
  const port = await freePort();
  const config = path.join(directory, 'distribution.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${JSON.stringify(path.join(directory, 'distribution-storage'))} }, delete: { enabled: true } }`,
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

/**
 * Seconds curl takes to GET each target into /dev/null, the median of `times` for each. The targets
 * take turns, after `sync` has written back what earlier pushes left dirty (Distribution does not
 * fsync), so that no target is timed while the disk is still busy with another's writes.
 */
export async function curlSeconds(targets: Array<{ port: number; urlPath: string }>, times = 5): Promise<number[]> {
  await run('sync', []);
  const seconds = targets.map((): number[] => []);
  for (let index = 0; index < times; index++) {
    for (const [target, { port, urlPath }] of targets.entries()) {
      const { stdout } = await run('curl', ['-sf', '-o', '/dev/null', '-w', '%{time_total}', `http://127.0.0.1:${port}${urlPath}`]);
      seconds[target]!.push(Number(stdout));
    }
  }
  return seconds.map((each) => each.sort((a, b) => a - b)[Math.floor(times / 2)]!);
}
