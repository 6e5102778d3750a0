/**
 * The registry at scale: 100,000 tags in one repository, then 100,000 repositories (BENCH_SCALE sets
 * both counts). Prints the push time per tag and per repository, the whole tag list, one page of
 * tags, one catalog page, and the database's size on disk. Figures only: nothing passes or fails.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { testBlob } from '../helpers/blobs.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';
import { byClients, medianMs, send } from './requests.js';
import { benchSize } from './limits.js';

const count = benchSize('BENCH_SCALE', 100_000, 2_000);
const clients = 16;
const manifestType = 'application/vnd.oci.image.manifest.v1+json';

/** The database file and its write-ahead log. */
async function databaseBytes(root: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(root)) if (name.startsWith('registry.db')) total += (await stat(path.join(root, name))).size;
  return total;
}

const padded = (index: number) => String(index).padStart(6, '0');

async function main(): Promise<void> {
  await withTemporaryDirectory('registry-bench-scale-', async (directory) => {
    const root = path.join(directory, 'storage');
    const server = await startServerProcess({ root, keepLogs: false });
    const port = server.port;
    try {
      // One image whose only blob is its config: each new repository mounts it and takes the manifest.
      const config = testBlob(2);
      await send(port, 'POST', `/v2/scale/app/blobs/uploads/?digest=${config.digest}`, 201, config.bytes);
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: manifestType, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length }, layers: [] }));

      const tagSeconds = await byClients(count, clients, (index) => send(port, 'PUT', `/v2/scale/app/manifests/t${padded(index)}`, 201, manifest, manifestType));
      let listed = 0;
      const wholeMs = await medianMs(5, async () => {
        listed = ((await rawRequest(port, 'GET', '/v2/scale/app/tags/list')).json() as { tags: string[] }).tags.length;
      });
      const pageMs = await medianMs(15, () => rawRequest(port, 'GET', `/v2/scale/app/tags/list?n=100&last=t${padded(Math.floor(count / 2))}`));
      const afterTags = await databaseBytes(root);

      const repositorySeconds = await byClients(count, clients, async (index) => {
        const name = `scale/r${padded(index)}`;
        await send(port, 'POST', `/v2/${name}/blobs/uploads/?mount=${config.digest}&from=scale/app`, 201);
        await send(port, 'PUT', `/v2/${name}/manifests/latest`, 201, manifest, manifestType);
      });
      let catalogListed = 0;
      const catalogFirstMs = await medianMs(15, async () => {
        catalogListed = ((await rawRequest(port, 'GET', '/v2/_catalog?n=1000')).json() as { repositories: string[] }).repositories.length;
      });
      const catalogMiddleMs = await medianMs(15, () => rawRequest(port, 'GET', `/v2/_catalog?n=1000&last=scale/r${padded(Math.floor(count / 2))}`));
      const afterRepositories = await databaseBytes(root);
      // The web UI's pages over the same repositories and tags: 50 rows with counts, sizes and last pushes.
      const middle = `scale/r${padded(Math.floor(count / 2))}`;
      const summariesByNameMs = await medianMs(15, () => send(port, 'GET', `/api/v1/repositories?n=50&last=${middle}`, 200));
      const summariesByPushMs = await medianMs(15, () => send(port, 'GET', `/api/v1/repositories?n=50&sort=pushed&last=${middle}`, 200));
      const summariesSearchMs = await medianMs(15, () => send(port, 'GET', `/api/v1/repositories?n=50&q=r${padded(Math.floor(count / 2)).slice(0, -2)}`, 200));
      const tagRowsMs = await medianMs(15, () => send(port, 'GET', `/api/v1/repositories/scale/app/tags?n=100&last=t${padded(Math.floor(count / 2))}`, 200));

      const row = (label: string, value: string) => console.log(`  ${label.padEnd(56)} ${value}`);
      const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
      console.log(`scale: ${count} tags in one repository, then ${count} repositories (${clients} clients pushing; SQLite, filesystem)`);
      row('tag PUTs', `${(count / tagSeconds).toFixed(0)} tags/s, ${((tagSeconds / count) * 1000).toFixed(2)} ms per tag (${tagSeconds.toFixed(0)} s in all)`);
      row(`GET tags/list, all ${listed} tags (median of 5)`, `${wholeMs.toFixed(1)} ms`);
      row('GET tags/list?n=100&last=<middle> (median of 15)', `${pageMs.toFixed(2)} ms`);
      row('database after the tags', mib(afterTags));
      row('repository pushes (a mount + a manifest)', `${(count / repositorySeconds).toFixed(0)} repositories/s, ${((repositorySeconds / count) * 1000).toFixed(2)} ms each (${repositorySeconds.toFixed(0)} s)`);
      row(`GET _catalog?n=1000, first page (${catalogListed} listed, median of 15)`, `${catalogFirstMs.toFixed(2)} ms`);
      row('GET _catalog?n=1000&last=<middle> (median of 15)', `${catalogMiddleMs.toFixed(2)} ms`);
      row('database after the repositories', mib(afterRepositories));
      row('web UI: 50 repository summaries by name, <middle> (median of 15)', `${summariesByNameMs.toFixed(2)} ms`);
      row('web UI: 50 repository summaries by last push, <middle>', `${summariesByPushMs.toFixed(2)} ms`);
      row('web UI: repository search by substring (a full scan of names)', `${summariesSearchMs.toFixed(2)} ms`);
      row('web UI: 100 tag rows of the big repository, <middle>', `${tagRowsMs.toFixed(2)} ms`);
    } finally {
      await server.stop();
    }
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
