/**
 * Manifest GET by tag under 50 concurrent connections (req/s, p50, p99), next to a bare Node HTTP
 * server answering the same bytes under the same load in the same run, and on PostgreSQL where one
 * answers; then pushing 10,000 tags and listing them. Figures only: nothing here passes or fails on speed.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { testBlob } from '../helpers/blobs.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { loadTest, type LoadResult } from './load.js';

const connections = 50;
const loadSeconds = Number(process.env.BENCH_LOAD_SECONDS ?? 5);
const tagCount = Number(process.env.BENCH_TAGS ?? 10_000);
const repository = 'bench/app';

async function push(port: number, method: string, requestPath: string, body: Buffer, contentType: string): Promise<void> {
  const response = await rawRequest(port, method, requestPath, { headers: { 'Content-Type': contentType, 'Content-Length': String(body.length) }, body });
  if (response.status !== 201) throw new Error(`${method} ${requestPath} answered ${response.status}: ${response.body.toString()}`);
}

async function pushImage(port: number): Promise<Buffer> {
  const config = testBlob(300);
  const layer = testBlob(4096);
  for (const blob of [config, layer]) {
    await push(port, 'POST', `/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, blob.bytes, 'application/octet-stream');
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.bytes.length }],
    }),
  );
  await push(port, 'PUT', `/v2/${repository}/manifests/latest`, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return manifest;
}

/** A bare Node HTTP server in its own process answering every request with the same bytes. */
async function bareServerLoad(body: Buffer): Promise<LoadResult> {
  const script = `const b=Buffer.from(${JSON.stringify(body.toString('base64'))},'base64');const s=require('http').createServer((q,r)=>{r.writeHead(200,{'Content-Type':'application/vnd.oci.image.manifest.v1+json','Content-Length':b.length});r.end(b)});s.keepAliveTimeout=60000;s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`;
  const bare = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => bare.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  try {
    return await loadTest({ port, path: '/', connections, seconds: loadSeconds });
  } finally {
    bare.kill('SIGTERM');
  }
}

/** The same manifest GET load against a registry whose metadata is in PostgreSQL; a reason when it cannot run. */
async function postgresManifestLoad(root: string): Promise<LoadResult | string> {
  const skip = await postgresSkipReason();
  if (skip) return skip;
  const database = await createTestDatabase();
  try {
    const server = await startServerProcess({ root, keepLogs: false, env: { REGISTRY_DATABASE_URL: database.url } });
    try {
      await pushImage(server.port);
      const options = { port: server.port, path: `/v2/${repository}/manifests/latest`, headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' }, connections };
      await loadTest({ ...options, seconds: 1 });
      return await loadTest({ ...options, seconds: loadSeconds });
    } finally {
      await server.stop();
    }
  } finally {
    await database.drop();
  }
}

async function timeMs(body: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await body();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  await withTemporaryDirectory('registry-bench-manifests-', async (directory) => {
    const server = await startServerProcess({ root: path.join(directory, 'storage'), keepLogs: false });
    try {
      const manifest = await pushImage(server.port);
      const accept = { Accept: 'application/vnd.oci.image.manifest.v1+json' };
      await loadTest({ port: server.port, path: `/v2/${repository}/manifests/latest`, headers: accept, connections, seconds: 1 });
      const registry = await loadTest({ port: server.port, path: `/v2/${repository}/manifests/latest`, headers: accept, connections, seconds: loadSeconds });
      const bare = await bareServerLoad(manifest);
      if (registry.failures > 0) throw new Error(`${registry.failures} manifest GETs failed`);

      const tagsStarted = process.hrtime.bigint();
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < tagCount) {
            const tag = `t${String(next++).padStart(5, '0')}`;
            await push(server.port, 'PUT', `/v2/${repository}/manifests/${tag}`, manifest, 'application/vnd.oci.image.manifest.v1+json');
          }
        }),
      );
      const tagSeconds = Number(process.hrtime.bigint() - tagsStarted) / 1e9;
      let listed = 0;
      const fullListing: number[] = [];
      for (let round = 0; round < 15; round++) {
        fullListing.push(
          await timeMs(async () => {
            const response = await rawRequest(server.port, 'GET', `/v2/${repository}/tags/list`);
            listed = (response.json() as { tags: string[] }).tags.length;
          }),
        );
      }
      const pages: number[] = [];
      for (let round = 0; round < 15; round++) {
        pages.push(await timeMs(() => rawRequest(server.port, 'GET', `/v2/${repository}/tags/list?n=100&last=t05000`)));
      }

      const postgres = await postgresManifestLoad(path.join(directory, 'storage-postgres'));

      const row = (label: string, value: string) => console.log(`  ${label.padEnd(50)} ${value}`);
      const describe = (result: LoadResult) =>
        `${result.perSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms (${result.requests} requests)`;
      console.log(`manifest GET by tag, ${connections} keep-alive connections, ${loadSeconds} s each`);
      row('bare Node HTTP server, same bytes (machine limit)', describe(bare));
      row('registry GET /v2/<name>/manifests/<tag>', describe(registry));
      row('registry / bare, req/s', (registry.perSecond / bare.perSecond).toFixed(2));
      if (typeof postgres === 'string') {
        row('registry on PostgreSQL', postgres);
      } else {
        row('registry on PostgreSQL (same load)', describe(postgres));
        row('PostgreSQL / SQLite, req/s', (postgres.perSecond / registry.perSecond).toFixed(2));
      }
      console.log(`tags: ${tagCount} pushed, then listed`);
      row('tag PUTs (16 clients)', `${(tagCount / tagSeconds).toFixed(0)} tags/s`);
      row(`GET tags/list, all ${listed} tags (median of 15)`, `${median(fullListing).toFixed(1)} ms`);
      row('GET tags/list?n=100&last=… (median of 15)', `${median(pages).toFixed(2)} ms`);
    } finally {
      await server.stop();
    }
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
