import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startS3Server } from '../helpers/s3-server.js';
import { residentBytes, sampleResidentMemory, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { streamPull, streamPush } from '../helpers/streaming-client.js';

const MiB = 1024 * 1024;

describe('blobs stream with flat memory', () => {
  it('a 2 GiB push and pull grow the server RSS by less than 64 MiB', { timeout: 600_000 }, async () => {
    await withTemporaryDirectory('registry-memory-', async (root) => {
      const server = await startServerProcess({ root });
      try {
        // Warm up code paths and pools first, so the baseline is a running server, not a cold one.
        const warm = await streamPush(server.port, 'memory/warmup', 32 * MiB);
        await streamPull(server.port, 'memory/warmup', warm);
        const baseline = residentBytes(server.pid);
        const sampler = sampleResidentMemory(server.pid);
        const size = 2 * 1024 * MiB;
        const digest = await streamPush(server.port, 'memory/big', size);
        const pulled = await streamPull(server.port, 'memory/big', digest);
        const peak = sampler.stop();
        assert.equal(pulled.size, size);
        assert.equal(pulled.digest, digest);
        const growth = peak - baseline;
        console.log(`server RSS: baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB over a 2 GiB push and pull`);
        assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
      } finally {
        await server.stop();
      }
    });
  });

  it('a 1 GiB push and pull through the S3 driver grow the server RSS by less than part size × concurrency + 32 MiB', { timeout: 900_000 }, async () => {
    const partSize = 10 * MiB;
    const concurrency = 3;
    const s3 = await startS3Server();
    try {
      await s3.createBucket('memory');
      await withTemporaryDirectory('registry-memory-s3-', async (root) => {
        const env = s3.registryEnv('memory', { REGISTRY_STORAGE_S3_CHUNKSIZE: String(partSize), REGISTRY_STORAGE_S3_PARTCONCURRENCY: String(concurrency) });
        const server = await startServerProcess({ root, env });
        try {
          const warm = await streamPush(server.port, 'memory/warmup', 32 * MiB);
          await streamPull(server.port, 'memory/warmup', warm);
          const baseline = residentBytes(server.pid);
          const sampler = sampleResidentMemory(server.pid);
          const size = 1024 * MiB;
          const digest = await streamPush(server.port, 'memory/big', size);
          const pulled = await streamPull(server.port, 'memory/big', digest);
          const peak = sampler.stop();
          assert.equal(pulled.size, size);
          assert.equal(pulled.digest, digest);
          const growth = peak - baseline;
          const bound = partSize * concurrency + 32 * MiB;
          console.log(`server RSS (S3): baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB over a 1 GiB push and pull (bound ${bound / MiB} MiB)`);
          assert.ok(growth < bound, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
        } finally {
          await server.stop();
        }
      });
    } finally {
      await s3.dispose();
    }
  });
});
