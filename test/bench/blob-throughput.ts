/**
 * Pushes (one streamed PATCH, as docker does) and pulls a 1 GiB blob through a registry process, and
 * prints MB/s next to this machine's own limits measured in the same run: sha256 speed, fresh-file
 * disk writes, and plain loopback HTTP. Figures only: nothing here passes or fails on speed.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { patternStream } from '../helpers/blobs.js';
import { rawRequest } from '../helpers/raw-http.js';
import { residentBytes, sampleResidentMemory, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { streamPull, streamPush } from '../helpers/streaming-client.js';
import { diskWriteSpeed, megabytesPerSecond, sha256Speed, timed } from './limits.js';

const MiB = 1024 * 1024;
const size = Number(process.env.BENCH_BLOB_MIB ?? 1024) * MiB;

/** A bare Node HTTP server in its own process that reads and drops request bodies. */
async function loopbackSpeed(): Promise<number> {
  const sink = spawn(
    process.execPath,
    ['-e', "const s=require('http').createServer((q,r)=>{q.resume();q.on('end',()=>r.end())});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) => sink.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  try {
    const { seconds } = await timed(() => rawRequest(port, 'PUT', '/', { body: patternStream(size).stream }));
    return megabytesPerSecond(size, seconds);
  } finally {
    sink.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  await withTemporaryDirectory('registry-bench-', async (directory) => {
    const limits = {
      sha256: await sha256Speed(size),
      disk: await diskWriteSpeed(directory, size),
      loopback: await loopbackSpeed(),
    };
    const server = await startServerProcess({ root: path.join(directory, 'storage'), keepLogs: false });
    try {
      const warm = await streamPush(server.port, 'bench/warmup', 16 * MiB);
      await streamPull(server.port, 'bench/warmup', warm);
      const baseline = residentBytes(server.pid);
      const sampler = sampleResidentMemory(server.pid);
      const push = await timed(() => streamPush(server.port, 'bench/blob', size));
      const pull = await timed(() => streamPull(server.port, 'bench/blob', push.value));
      const peak = sampler.stop();
      if (pull.value.digest !== push.value || pull.value.size !== size) throw new Error('pulled bytes differ from pushed bytes');
      const pushSpeed = megabytesPerSecond(size, push.seconds);
      const pullSpeed = megabytesPerSecond(size, pull.seconds);
      const row = (label: string, value: string) => console.log(`  ${label.padEnd(44)} ${value}`);
      console.log(`blob throughput, ${size / MiB} MiB blob, one streamed PATCH (chunked, no length) then PUT ?digest=`);
      console.log('machine limits (same run):');
      row('sha256 in Node', `${limits.sha256.toFixed(0)} MB/s`);
      row('fresh-file disk write + fsync', `${limits.disk.toFixed(0)} MB/s`);
      row('loopback HTTP upload to a bare Node server', `${limits.loopback.toFixed(0)} MB/s`);
      console.log('registry:');
      row('push (client hashes, server hashes + writes)', `${pushSpeed.toFixed(0)} MB/s`);
      row('pull (client hashes)', `${pullSpeed.toFixed(0)} MB/s`);
      row('push / min(sha256, disk)', (pushSpeed / Math.min(limits.sha256, limits.disk)).toFixed(2));
      row('push / loopback', (pushSpeed / limits.loopback).toFixed(2));
      row('pull / loopback', (pullSpeed / limits.loopback).toFixed(2));
      row('server RSS baseline → peak', `${(baseline / MiB).toFixed(1)} → ${(peak / MiB).toFixed(1)} MiB (+${((peak - baseline) / MiB).toFixed(1)} MiB)`);
    } finally {
      await server.stop();
    }
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
