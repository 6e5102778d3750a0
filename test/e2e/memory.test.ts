import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startS3Server } from '../helpers/s3-server.js';
import { residentBytes, sampleResidentMemory, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { streamPull, streamPush } from '../helpers/streaming-client.js';

const MiB = 1024 * 1024;

/**
 * Starts a registry process, warms it up, then pushes and pulls `size` streamed bytes while sampling
 * its RSS; checks the bytes came back and that the RSS grew by less than `bound`.
 */
async function assertFlatMemory(root: string, env: Record<string, string>, size: number, bound: number, label: string): Promise<void> {
  const server = await startServerProcess({ root, env });
  try {
    // Warm up code paths and pools first, so the baseline is a running server, not a cold one.
    const warm = await streamPush(server.port, 'memory/warmup', 32 * MiB);
    await streamPull(server.port, 'memory/warmup', warm);
    const baseline = residentBytes(server.pid);
    const sampler = sampleResidentMemory(server.pid);
    const digest = await streamPush(server.port, 'memory/big', size);
    const pulled = await streamPull(server.port, 'memory/big', digest);
    const peak = sampler.stop();
    assert.equal(pulled.size, size);
    assert.equal(pulled.digest, digest);
    const growth = peak - baseline;
    const mebibytes = (bytes: number) => (bytes / MiB).toFixed(1);
    console.log(`server RSS (${label}): baseline ${mebibytes(baseline)} MiB, peak ${mebibytes(peak)} MiB, growth ${mebibytes(growth)} MiB over a ${size / MiB} MiB push and pull (bound ${bound / MiB} MiB)`);
    assert.ok(growth < bound, `RSS grew by ${mebibytes(growth)} MiB`);
  } finally {
    await server.stop();
  }
}

describe('blobs stream with flat memory', () => {
  // 256 MiB is four times the bound: a server that held a blob in memory would pass it whole.
  it('a 256 MiB push and pull grow the server RSS by less than 64 MiB', { timeout: 600_000 }, async () => {
    await withTemporaryDirectory('registry-memory-', (root) => assertFlatMemory(root, {}, 256 * MiB, 64 * MiB, 'filesystem'));
  });

  it('a 256 MiB push and pull through the S3 driver grow the server RSS by less than part size × concurrency + 32 MiB', { timeout: 900_000 }, async () => {
    const partSize = 10 * MiB;
    const concurrency = 3;
    const s3 = await startS3Server();
    try {
      await s3.createBucket('memory');
      const env = s3.registryEnv('memory', { REGISTRY_STORAGE_S3_CHUNKSIZE: String(partSize), REGISTRY_STORAGE_S3_PARTCONCURRENCY: String(concurrency) });
      await withTemporaryDirectory('registry-memory-s3-', (root) => assertFlatMemory(root, env, 256 * MiB, partSize * concurrency + 32 * MiB, 'S3'));
    } finally {
      await s3.dispose();
    }
  });
});

/** Pulls a blob, stopping to read for `pauseMs` after every `every` bytes: a client slower than the upstream. */
function slowPull(port: number, repository: string, digest: string, every: number, pauseMs: number): Promise<{ digest: string; size: number }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: `/v2/${repository}/blobs/${digest}`, agent: false }, (response) => {
      const hash = createHash('sha256');
      let size = 0;
      let sincePause = 0;
      response.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
        sincePause += chunk.length;
        if (sincePause >= every) {
          sincePause = 0;
          response.pause();
          setTimeout(() => response.resume(), pauseMs);
        }
      });
      response.on('end', () => resolve({ digest: `sha256:${hash.digest('hex')}`, size }));
      response.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

describe('the mirror streams with flat memory', () => {
  it('a 256 MiB blob pulled cold through the mirror by three clients at once, one of them slow, grows its RSS by less than 64 MiB', { timeout: 900_000 }, async () => {
    await withTemporaryDirectory('registry-memory-mirror-', async (root) => {
      const upstream = await startServerProcess({ root: path.join(root, 'upstream'), keepLogs: false });
      const config = path.join(root, 'mirror.yaml');
      await writeFile(config, `mirror:\n  upstreams:\n    up:\n      url: http://127.0.0.1:${upstream.port}\n`);
      const mirror = await startServerProcess({ root: path.join(root, 'mirror'), env: { REGISTRY_CONFIG: config }, keepLogs: false });
      try {
        const size = 256 * MiB;
        const warm = await streamPush(upstream.port, 'memory/warmup', 32 * MiB);
        await streamPull(mirror.port, 'up/memory/warmup', warm);
        const digest = await streamPush(upstream.port, 'memory/big', size);
        const baseline = residentBytes(mirror.pid);
        const sampler = sampleResidentMemory(mirror.pid);
        const pulls = await Promise.all([
          streamPull(mirror.port, 'up/memory/big', digest),
          streamPull(mirror.port, 'up/memory/big', digest),
          slowPull(mirror.port, 'up/memory/big', digest, 4 * MiB, 100),
        ]);
        const peak = sampler.stop();
        for (const pulled of pulls) assert.deepEqual(pulled, { digest, size });
        const growth = peak - baseline;
        console.log(`mirror RSS: baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB over a cold ${size / MiB} MiB pull by three clients (bound 64 MiB)`);
        assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
      } finally {
        await mirror.stop();
        await upstream.stop();
      }
    });
  });
});
