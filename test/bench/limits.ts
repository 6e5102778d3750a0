import { createHash, randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';

/** What benchmarks share: sizes, timing, and this machine's own limits measured in the same run. */

/**
 * REGISTRY_BENCH_SMOKE=1 (npm run bench:smoke, as CI runs them): every benchmark end to end at small
 * sizes, printing the same rows, so that one that breaks is caught in minutes; the figures then say
 * little. Without it, the full sizes.
 */
export const smokeMode = process.env.REGISTRY_BENCH_SMOKE === '1';

/** A size a benchmark runs at: its variable when set, else the full size, or in smoke mode the small one. */
export function benchSize(variable: string, full: number, smoke: number): number {
  const given = process.env[variable];
  return given !== undefined && given !== '' ? Number(given) : smokeMode ? smoke : full;
}

const MiB = 1024 * 1024;

export function megabytesPerSecond(bytes: number, seconds: number): number {
  return bytes / 1e6 / seconds;
}

export async function timed<T>(body: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await body();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, value };
}

/** sha256 in Node over `size` bytes, MB/s. */
export async function sha256Speed(size: number): Promise<number> {
  const block = randomBytes(64 * MiB);
  const { seconds } = await timed(async () => {
    const hash = createHash('sha256');
    for (let done = 0; done < size; done += block.length) hash.update(block);
    hash.digest();
  });
  return megabytesPerSecond(size, seconds);
}

/** Writing `size` bytes to a fresh file in the directory, then fsync, MB/s. */
export async function diskWriteSpeed(directory: string, size: number): Promise<number> {
  const file = path.join(directory, 'disk-speed');
  const block = randomBytes(4 * MiB);
  const { seconds } = await timed(async () => {
    const handle = await open(file, 'w');
    for (let done = 0; done < size; done += block.length) await handle.write(block);
    await handle.sync();
    await handle.close();
  });
  await rm(file);
  return megabytesPerSecond(size, seconds);
}
