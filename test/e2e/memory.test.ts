import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
});
