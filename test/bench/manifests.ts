/**
 * Manifest GET by tag under 50 concurrent connections (req/s, p50, p99), next to a bare Node HTTP
 * server and a bare Koa app answering the same bytes under the same load in the same run, and on
 * PostgreSQL where one answers; then 5,000 tags pushed and listed (whole and one page) and a catalog
 * page of 1,000 repositories. Where REGISTRY_BENCH_DISTRIBUTION names CNCF Distribution, it gets the
 * same data and load, and the ratios are printed. Figures only: nothing here passes or fails on speed.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { testBlob } from '../helpers/blobs.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { rawRequest } from '../helpers/raw-http.js';
import { projectRoot, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { distributionBinary, startDistribution } from './distribution.js';
import { measureLoad, type LoadResult } from './load.js';
import { byClients, medianMs, send } from './requests.js';
import { benchSize } from './limits.js';

const connections = 50;
const loadSeconds = benchSize('BENCH_LOAD_SECONDS', 5, 1);
const tagCount = benchSize('BENCH_TAGS', 5_000, 500);
const catalogRepositories = benchSize('BENCH_REPOSITORIES', 1_000, 200);
const repository = 'bench/app';
const manifestType = 'application/vnd.oci.image.manifest.v1+json';
const accept = { Accept: manifestType };
/**
 * Distribution runs here with its access log off (test/bench/distribution.ts), so ours does too for
 * the side-by-side figures; one more run prints ours with its request log on, as it ships.
 */
const quiet = { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' };

/** A blob by POST then PUT ?digest= (the flow both registries take), a manifest naming them under a tag. */
async function pushImage(port: number): Promise<{ manifest: Buffer; blobs: string[] }> {
  const config = testBlob(300);
  const layer = testBlob(4096);
  for (const blob of [config, layer]) {
    const location = new URL(String((await send(port, 'POST', `/v2/${repository}/blobs/uploads/`, 202)).location), 'http://registry');
    location.searchParams.set('digest', blob.digest);
    await send(port, 'PUT', location.pathname + location.search, 201, blob.bytes);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.bytes.length }],
    }),
  );
  await send(port, 'PUT', `/v2/${repository}/manifests/latest`, 201, manifest, manifestType);
  return { manifest, blobs: [config.digest, layer.digest] };
}

/** A server in its own process answering every request with the same bytes: bare Node, or Koa with one middleware. */
async function bareServerLoad(body: Buffer, kind: 'node' | 'koa'): Promise<LoadResult> {
  const bytes = `Buffer.from(${JSON.stringify(body.toString('base64'))},'base64')`;
  const script =
    kind === 'node'
      ? `const b=${bytes};const s=require('http').createServer((q,r)=>{r.writeHead(200,{'Content-Type':'${manifestType}','Content-Length':b.length});r.end(b)});s.keepAliveTimeout=60000;s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`
      : `const Koa=require(${JSON.stringify(path.join(projectRoot, 'node_modules/koa'))});const b=${bytes};const a=new Koa();a.use(async(c)=>{c.body=b;c.type='${manifestType}'});const s=a.listen(0,'127.0.0.1',()=>console.log(s.address().port));s.keepAliveTimeout=60000`;
  const bare = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => bare.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  try {
    await measureLoad({ port, path: '/', connections, seconds: 1 });
    return await measureLoad({ port, path: '/', connections, seconds: loadSeconds });
  } finally {
    bare.kill('SIGTERM');
  }
}

async function manifestLoad(port: number): Promise<LoadResult> {
  const options = { port, path: `/v2/${repository}/manifests/latest`, headers: accept, connections };
  await measureLoad({ ...options, seconds: 1 });
  const result = await measureLoad({ ...options, seconds: loadSeconds });
  if (result.failures > 0) throw new Error(`${result.failures} manifest GETs failed on port ${port}`);
  return result;
}

/** `count` jobs by 16 clients at once; their rate per second. */
async function perSecond(count: number, job: (index: number) => Promise<unknown>): Promise<number> {
  return count / (await byClients(count, 16, job));
}

interface RegistryFigures {
  manifestGet: LoadResult;
  tagPuts: number;
  wholeListMs: number;
  listed: number;
  pageMs: number;
  repositoryPushes: number;
  catalogPageMs: number;
  catalogListed: number;
}

/** The same data and requests on any registry: ours or Distribution. */
async function measureRegistry(port: number): Promise<RegistryFigures & { manifest: Buffer }> {
  const { manifest, blobs } = await pushImage(port);
  const manifestGet = await manifestLoad(port);
  const tagPuts = await perSecond(tagCount, (index) => send(port, 'PUT', `/v2/${repository}/manifests/t${String(index).padStart(6, '0')}`, 201, manifest, manifestType));
  let listed = 0;
  const wholeListMs = await medianMs(15, async () => {
    listed = ((await rawRequest(port, 'GET', `/v2/${repository}/tags/list`)).json() as { tags: string[] }).tags.length;
  });
  const pageMs = await medianMs(15, () => rawRequest(port, 'GET', `/v2/${repository}/tags/list?n=100&last=t${String(Math.floor(tagCount / 2)).padStart(6, '0')}`));
  // More repositories, each with the image's blobs mounted from the first and the manifest under a tag.
  const repositoryPushes = await perSecond(catalogRepositories, async (index) => {
    const name = `bench/r${String(index).padStart(6, '0')}`;
    for (const digest of blobs) await send(port, 'POST', `/v2/${name}/blobs/uploads/?mount=${digest}&from=${repository}`, 201);
    await send(port, 'PUT', `/v2/${name}/manifests/latest`, 201, manifest, manifestType);
  });
  let catalogListed = 0;
  const catalogPageMs = await medianMs(15, async () => {
    catalogListed = ((await rawRequest(port, 'GET', '/v2/_catalog?n=1000')).json() as { repositories: string[] }).repositories.length;
  });
  return { manifest, manifestGet, tagPuts, wholeListMs, listed, pageMs, repositoryPushes, catalogPageMs, catalogListed };
}

/** The same manifest GET load against a registry of its own, started with `env`. */
async function manifestLoadWith(root: string, env: Record<string, string>): Promise<LoadResult> {
  const server = await startServerProcess({ root, keepLogs: false, env: { ...quiet, ...env } });
  try {
    await pushImage(server.port);
    return await manifestLoad(server.port);
  } finally {
    await server.stop();
  }
}

/** The same manifest GET load against a registry whose metadata is in PostgreSQL; a reason when it cannot run. */
async function postgresManifestLoad(root: string): Promise<LoadResult | string> {
  const skip = await postgresSkipReason();
  if (skip) return skip;
  const database = await createTestDatabase();
  try {
    return await manifestLoadWith(root, { REGISTRY_DATABASE_URL: database.url });
  } finally {
    await database.drop();
  }
}

async function main(): Promise<void> {
  await withTemporaryDirectory('registry-bench-manifests-', async (directory) => {
    const server = await startServerProcess({ root: path.join(directory, 'storage'), keepLogs: false, env: quiet });
    let ours: Awaited<ReturnType<typeof measureRegistry>>;
    try {
      ours = await measureRegistry(server.port);
    } finally {
      await server.stop();
    }
    const bareNode = await bareServerLoad(ours.manifest, 'node');
    const bareKoa = await bareServerLoad(ours.manifest, 'koa');
    const logged = await manifestLoadWith(path.join(directory, 'storage-logged'), { REGISTRY_LOG_ACCESSLOG_DISABLED: 'false' });
    const postgres = await postgresManifestLoad(path.join(directory, 'storage-postgres'));
    const binary = distributionBinary();
    let distribution: RegistryFigures | null = null;
    if (binary) {
      const running = await startDistribution(binary, directory);
      try {
        distribution = await measureRegistry(running.port);
      } finally {
        await running.stop();
      }
    }

    const row = (label: string, value: string) => console.log(`  ${label.padEnd(52)} ${value}`);
    const describe = (result: LoadResult) => `${result.perSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms (${result.requests} requests)`;
    console.log(`manifest GET by tag, ${connections} keep-alive connections, ${loadSeconds} s each, load from ${ours.manifestGet.generator}; access logs off unless said`);
    row('bare Node HTTP server, same bytes (machine limit)', describe(bareNode));
    row('bare Koa app, same bytes', describe(bareKoa));
    row('registry GET /v2/<name>/manifests/<tag>', describe(ours.manifestGet));
    row('registry, a JSON log line per request (the default)', describe(logged));
    row('registry with / without its request log, req/s', (logged.perSecond / ours.manifestGet.perSecond).toFixed(2));
    row('registry / bare Node, req/s', (ours.manifestGet.perSecond / bareNode.perSecond).toFixed(2));
    row('registry / bare Koa, req/s', (ours.manifestGet.perSecond / bareKoa.perSecond).toFixed(2));
    if (typeof postgres === 'string') {
      row('registry on PostgreSQL', postgres);
    } else {
      row('registry on PostgreSQL (same load)', describe(postgres));
      row('PostgreSQL / SQLite, req/s', (postgres.perSecond / ours.manifestGet.perSecond).toFixed(2));
    }
    console.log(`tags and catalog: ${tagCount} tags pushed and listed; ${catalogRepositories} more repositories, then a catalog page`);
    const figures: Array<[string, (figures: RegistryFigures) => number, string, 'higher' | 'lower']> = [
      ['manifest GET by tag', (f) => f.manifestGet.perSecond, 'req/s', 'higher'],
      ['tag PUTs (16 clients)', (f) => f.tagPuts, 'tags/s', 'higher'],
      [`GET tags/list, all ${ours.listed} tags (median of 15)`, (f) => f.wholeListMs, 'ms', 'lower'],
      ['GET tags/list?n=100&last=… (median of 15)', (f) => f.pageMs, 'ms', 'lower'],
      ['repository pushes: 2 mounts + a manifest (16 clients)', (f) => f.repositoryPushes, 'repositories/s', 'higher'],
      [`GET _catalog?n=1000 (${ours.catalogListed} listed, median of 15)`, (f) => f.catalogPageMs, 'ms', 'lower'],
    ];
    for (const [label, value, unit] of figures) row(`${label}`, `${value(ours).toFixed(unit === 'ms' ? 2 : 0)} ${unit}`);
    if (distribution) {
      console.log('side by side with Distribution (same data, same load; ratio > 1: ours is faster)');
      for (const [label, value, unit, better] of figures) {
        const ratio = better === 'higher' ? value(ours) / value(distribution) : value(distribution) / value(ours);
        row(label, `Distribution ${value(distribution).toFixed(unit === 'ms' ? 2 : 0)} ${unit}; ours ${ratio.toFixed(2)}×`);
      }
      if (distribution.listed !== ours.listed || distribution.catalogListed !== ours.catalogListed) {
        throw new Error(`the registries listed different data: tags ${ours.listed}/${distribution.listed}, catalog ${ours.catalogListed}/${distribution.catalogListed}`);
      }
    }
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
