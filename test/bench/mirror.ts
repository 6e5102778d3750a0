/**
 * The pull-through mirror against pulling straight from its upstream, both registry processes on
 * this machine: a blob pulled cold (the mirror fetches, verifies, stores and streams at once) and
 * warm (from the mirror's storage), and manifest GETs by tag (fresh in the cache) one after another.
 * Ratios to the direct pull measured in the same run; nothing here passes or fails on speed.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { imageManifest } from '../helpers/images.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { streamPull, streamPush } from '../helpers/streaming-client.js';
import { benchSize, diskWriteSpeed, megabytesPerSecond, timed } from './limits.js';

const MiB = 1024 * 1024;
const size = benchSize('BENCH_MIRROR_MIB', 256, 32) * MiB;
const manifestRequests = 500;

async function pullBlob(port: number, repository: string, digest: string): Promise<number> {
  const { seconds, value } = await timed(() => streamPull(port, repository, digest));
  if (value.digest !== digest || value.size !== size) throw new Error(`pulled bytes differ from the blob (${value.digest}, ${value.size} bytes)`);
  return megabytesPerSecond(size, seconds);
}

async function manifestRate(port: number, repository: string): Promise<number> {
  const { seconds } = await timed(async () => {
    for (let request = 0; request < manifestRequests; request++) {
      const response = await rawRequest(port, 'GET', `/v2/${repository}/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      if (response.status !== 200) throw new Error(`manifest GET answered ${response.status}`);
    }
  });
  return manifestRequests / seconds;
}

async function main(): Promise<void> {
  await withTemporaryDirectory('registry-bench-mirror-', async (directory) => {
    const upstream = await startServerProcess({ root: path.join(directory, 'upstream'), keepLogs: false });
    const config = path.join(directory, 'mirror.yaml');
    await writeFile(config, `mirror:\n  upstreams:\n    up:\n      url: http://127.0.0.1:${upstream.port}\n      ttl: 1h\n`);
    const mirror = await startServerProcess({ root: path.join(directory, 'mirror'), env: { REGISTRY_CONFIG: config }, keepLogs: false });
    try {
      const digest = await streamPush(upstream.port, 'bench/app', size);
      const otherDigest = await streamPush(upstream.port, 'bench/app', size);
      const manifest = imageManifest();
      for (const blob of manifest.blobs) {
        const pushed = await rawRequest(upstream.port, 'POST', `/v2/bench/app/blobs/uploads/?digest=${blob.digest}`, { body: blob.bytes, headers: { 'Content-Length': String(blob.bytes.length) } });
        if (pushed.status !== 201) throw new Error(`blob push answered ${pushed.status}`);
      }
      const put = await rawRequest(upstream.port, 'PUT', '/v2/bench/app/manifests/v1', { body: manifest.bytes, headers: { 'Content-Type': manifest.mediaType } });
      if (put.status !== 201) throw new Error(`manifest push answered ${put.status}`);

      // The disk on this kind of machine moves from run to run (and within one): each cold pull is
      // taken right after a disk measurement, twice, and the best of each pair is compared.
      const diskFirst = await diskWriteSpeed(directory, size);
      const direct = await pullBlob(upstream.port, 'bench/app', digest);
      const coldFirst = await pullBlob(mirror.port, 'up/bench/app', digest);
      const diskAgain = await diskWriteSpeed(directory, size);
      const coldAgain = await pullBlob(mirror.port, 'up/bench/app', otherDigest);
      const warmFirst = await pullBlob(mirror.port, 'up/bench/app', digest);
      const directAgain = await pullBlob(upstream.port, 'bench/app', digest);
      const warmAgain = await pullBlob(mirror.port, 'up/bench/app', digest);
      await rawRequest(mirror.port, 'GET', '/v2/up/bench/app/manifests/v1', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      const manifestsDirect = await manifestRate(upstream.port, 'bench/app');
      const manifestsMirror = await manifestRate(mirror.port, 'up/bench/app');

      // Best of two on both sides, interleaved, so that one noisy sample does not make the ratio.
      const directBest = Math.max(direct, directAgain);
      const warm = Math.max(warmFirst, warmAgain);
      const cold = Math.max(coldFirst, coldAgain);
      const disk = Math.max(diskFirst, diskAgain);
      const row = (label: string, value: string) => console.log(`  ${label.padEnd(52)} ${value}`);
      console.log(`pull-through mirror, ${size / MiB} MiB blob and ${manifestRequests} sequential manifest GETs, upstream and mirror on this machine`);
      row('machine: fresh-file disk write + fsync (best of two)', `${disk.toFixed(0)} MB/s`);
      row('direct pull from the upstream (best of two)', `${directBest.toFixed(0)} MB/s`);
      row('cold pull through the mirror (best of two blobs)', `${cold.toFixed(0)} MB/s`);
      row('warm pull from the mirror (best of two)', `${warm.toFixed(0)} MB/s`);
      row('cold / direct', (cold / directBest).toFixed(2));
      row('cold / min(direct, disk): a cold pull also writes', (cold / Math.min(directBest, disk)).toFixed(2));
      row('warm / direct', (warm / directBest).toFixed(2));
      row('manifest GET by tag, direct', `${manifestsDirect.toFixed(0)} req/s`);
      row('manifest GET by tag, mirror (fresh in cache)', `${manifestsMirror.toFixed(0)} req/s`);
      row('mirror / direct (manifests)', (manifestsMirror / manifestsDirect).toFixed(2));
    } finally {
      await mirror.stop();
      await upstream.stop();
    }
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
