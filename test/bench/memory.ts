/**
 * The registry's resident memory (RSS, sampled every 20 ms) while one client pushes a 4 GiB blob,
 * and while 50 clients pull 50 different 64 MiB blobs at once; the goal is 150 MiB at the peak.
 * Where REGISTRY_BENCH_DISTRIBUTION names CNCF Distribution, the same is measured on it. Figures
 * only: nothing here passes or fails on memory (test/e2e/memory.test.ts holds the bounds).
 */
import path from 'node:path';
import { residentBytes, sampleResidentMemory, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { streamPull, streamPush } from '../helpers/streaming-client.js';
import { distributionBinary, startDistribution } from './distribution.js';
import { benchSize, megabytesPerSecond, timed } from './limits.js';

const MiB = 1024 * 1024;
const pushSize = benchSize('BENCH_MEMORY_PUSH_MIB', 4096, 256) * MiB;
const pullers = benchSize('BENCH_MEMORY_PULLERS', 50, 10);
const pullSize = benchSize('BENCH_MEMORY_PULL_MIB', 64, 16) * MiB;

interface MemoryFigures {
  baseline: number;
  pushPeak: number;
  pushSpeed: number;
  pullPeak: number;
  pullSpeed: number;
}

async function measure(port: number, pid: number): Promise<MemoryFigures> {
  const warm = await streamPush(port, 'bench/warmup', 16 * MiB);
  await streamPull(port, 'bench/warmup', warm);
  const baseline = residentBytes(pid);

  const pushSampler = sampleResidentMemory(pid);
  const push = await timed(() => streamPush(port, 'bench/big', pushSize));
  const pushPeak = pushSampler.stop();

  const digests: string[] = [];
  for (let index = 0; index < pullers; index++) digests.push(await streamPush(port, `bench/many${index}`, pullSize));
  const pullSampler = sampleResidentMemory(pid);
  const pulls = await timed(() => Promise.all(digests.map((digest, index) => streamPull(port, `bench/many${index}`, digest))));
  const pullPeak = pullSampler.stop();
  pulls.value.forEach((pulled, index) => {
    if (pulled.digest !== digests[index] || pulled.size !== pullSize) throw new Error(`pull ${index} differs from its push`);
  });
  return {
    baseline,
    pushPeak,
    pushSpeed: megabytesPerSecond(pushSize, push.seconds),
    pullPeak,
    pullSpeed: megabytesPerSecond(pullers * pullSize, pulls.seconds),
  };
}

async function main(): Promise<void> {
  await withTemporaryDirectory('registry-bench-memory-', async (directory) => {
    const server = await startServerProcess({ root: path.join(directory, 'storage'), keepLogs: false });
    let ours: MemoryFigures;
    try {
      ours = await measure(server.port, server.pid);
    } finally {
      await server.stop();
    }
    const binary = distributionBinary();
    let distribution: MemoryFigures | null = null;
    if (binary) {
      const running = await startDistribution(binary, directory);
      try {
        distribution = await measure(running.port, running.pid);
      } finally {
        await running.stop();
      }
    }
    const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
    const row = (label: string, value: string) => console.log(`  ${label.padEnd(52)} ${value}`);
    console.log(`memory: one ${pushSize / MiB} MiB push (one streamed PATCH + PUT), then ${pullers} clients pulling ${pullers} different ${pullSize / MiB} MiB blobs at once`);
    for (const [name, figures] of [['registry', ours], ['Distribution', distribution]] as const) {
      if (!figures) continue;
      row(`${name}: RSS after warm-up`, mib(figures.baseline));
      row(`${name}: peak RSS during the push`, `${mib(figures.pushPeak)} (${figures.pushSpeed.toFixed(0)} MB/s)`);
      row(`${name}: peak RSS during the ${pullers} pulls`, `${mib(figures.pullPeak)} (${figures.pullSpeed.toFixed(0)} MB/s in all)`);
    }
    row('goal', 'peak ≤ 150 MiB in both');
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
