import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

/** Someone who ran registry:2 as a Docker Hub cache starts this one with the same variables. */
describe("a Distribution pull-through cache's settings, unchanged", { skip: missingClients('skopeo') }, () => {
  let directory: string;
  let upstream: ServerProcess;
  let cache: ServerProcess;
  let image: BlobDescriptor;

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-proxy-'));
    upstream = await startServerProcess({ root: path.join(directory, 'upstream') });
    const layout = new OciLayout(path.join(directory, 'layout'));
    image = await layout.addImage({ layers: [{ files: [{ name: 'bin/tool', size: 300_000 }] }] });
    await layout.tag(image, '1.0');
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.directory}:1.0`, `docker://127.0.0.1:${upstream.port}/library/tool:1.0`]);
    cache = await startServerProcess({
      root: path.join(directory, 'cache'),
      env: {
        REGISTRY_PROXY_REMOTEURL: `http://127.0.0.1:${upstream.port}`,
        // As Kubernetes injects them for a Service named `registry`, and a Distribution setting kept from before.
        REGISTRY_PORT: 'tcp://10.0.0.1:5000',
        REGISTRY_SERVICE_HOST: '10.0.0.1',
        REGISTRY_HTTP_SECRET: 'kept-from-distribution',
      },
    });
  });
  after(async () => {
    await cache?.stop();
    await upstream?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('REGISTRY_PROXY_REMOTEURL alone: plain names are pulled through the upstream, then from the cache when it is down', async () => {
    const pull = async (into: string) => {
      await run('skopeo', ['copy', '--src-tls-verify=false', `docker://127.0.0.1:${cache.port}/library/tool:1.0`, `oci:${path.join(directory, into)}:1.0`]);
      return (JSON.parse(await readFile(path.join(directory, into, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }).manifests[0]?.digest;
    };
    assert.equal(await pull('first'), image.digest);
    const manifestLines = () => cache.logs.filter((entry) => entry.msg === 'request' && entry.path === '/v2/library/tool/manifests/1.0' && entry.method === 'GET');
    assert.equal(manifestLines().at(-1)?.mirror, 'upstream', 'the request line says the answer came from the upstream');

    await upstream.stop();
    assert.equal(await pull('second'), image.digest, 'served from the cache with the upstream down');
    assert.equal(manifestLines().at(-1)?.mirror, 'cache');
  });

  it("names, in one warning, the REGISTRY_* variables that set nothing, and in one info line Distribution's keys it ignores", () => {
    const warnings = cache.logs.filter((entry) => entry.level === 'warn' && Array.isArray(entry.variables));
    assert.equal(warnings.length, 1);
    assert.deepEqual(warnings[0]?.variables, ['REGISTRY_PORT', 'REGISTRY_SERVICE_HOST']);
    const ignored = cache.logs.filter((entry) => entry.level === 'info' && Array.isArray(entry.keys));
    assert.deepEqual(ignored[0]?.keys, ['REGISTRY_HTTP_SECRET']);
  });
});
