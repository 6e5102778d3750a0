/**
 * CNCF Distribution beside this registry in a benchmark, on the same machine and the same data:
 * `REGISTRY_BENCH_DISTRIBUTION` names its binary (../shared/tools/distribution-registry here).
 */
import { run } from '../helpers/tools.js';

export { startDistribution, type RunningDistribution } from '../helpers/distribution.js';

/** The binary to compare with, or undefined (with the reason printed) when none is named or it is not there. */
export function distributionBinary(): string | undefined {
  const binary = process.env.REGISTRY_BENCH_DISTRIBUTION;
  if (!binary) console.log('Distribution side by side: skipped (set REGISTRY_BENCH_DISTRIBUTION to its binary)');
  return binary || undefined;
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
