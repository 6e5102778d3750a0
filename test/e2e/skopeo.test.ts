import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const skip = missingClients('skopeo');

async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

for (const storage of ['filesystem', 's3'] as const) {
  describe(`skopeo against a running registry (${storage} storage)`, { skip }, () => {
    let directory: string;
    let s3: S3TestServer | null = null;
    let server: ServerProcess;
    let host: string;
    let image: BlobDescriptor & { layers: BlobDescriptor[]; config: BlobDescriptor };
    let layout: OciLayout;

    const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 600_000 });
    const requestLines = (repository: string, route: string) =>
      server.logs.filter((entry) => entry.msg === 'request' && entry.repository === repository && entry.route === route);

    before(async () => {
      directory = await mkdtemp(path.join(tmpdir(), 'registry-skopeo-'));
      if (storage === 's3') {
        s3 = await startS3Server();
        await s3.createBucket('skopeo-e2e');
      }
      server = await startServerProcess({ root: path.join(directory, 'storage'), ...(s3 ? { env: s3.registryEnv('skopeo-e2e') } : {}) });
      host = `127.0.0.1:${server.port}`;
      layout = new OciLayout(path.join(directory, 'layout'));
      image = await layout.addImage({
        layers: [{ files: [{ name: 'etc/hello.txt', size: 2000 }] }, { files: [{ name: 'opt/big.bin', size: 52 * MiB }] }],
      });
      await layout.tag(image, 'v1');
    });
    after(async () => {
      await server?.stop();
      await s3?.dispose();
      await rm(directory, { recursive: true, force: true });
    });

    it('copies an image with a 52 MiB layer in and out, every blob byte for byte', async () => {
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://${host}/e2e/app:v1`);
      const out = path.join(directory, 'out');
      await skopeo('copy', '--src-tls-verify=false', `docker://${host}/e2e/app:v1`, `oci:${out}:v1`);
      for (const descriptor of [image, image.config, ...image.layers]) {
        const copied = path.join(out, 'blobs', 'sha256', descriptor.digest.slice(7));
        assert.equal(await fileDigest(copied), descriptor.digest, `${descriptor.mediaType} came back intact`);
      }
      const raw = (await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${host}/e2e/app:v1`)).stdout;
      assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, image.digest);
      const inspected = JSON.parse((await skopeo('inspect', '--tls-verify=false', `docker://${host}/e2e/app:v1`)).stdout) as { Digest: string; Layers: string[] };
      assert.equal(inspected.Digest, image.digest);
      assert.deepEqual(inspected.Layers, image.layers.map((layer) => layer.digest));
      if (s3) {
        const keys = await s3.keys('skopeo-e2e');
        const big = image.layers[1]!.digest.slice(7);
        assert.ok(keys.includes(`blobs/sha256/${big.slice(0, 2)}/${big}/data`), 'the 52 MiB layer is an object in the bucket');
        assert.deepEqual(keys.filter((key) => key.startsWith('uploads/')), [], 'no upload leftovers in the bucket');
      }
    });

    it('pushes the same image to a second repository by mounting its blobs', async () => {
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://${host}/e2e/second:v1`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const starts = requestLines('e2e/second', 'upload.start');
      assert.ok(starts.some((entry) => entry.status === 201), 'at least one blob was mounted (POST ?mount= answered 201)');
      const uploaded = requestLines('e2e/second', 'upload.patch').reduce((sum, entry) => sum + Number(entry.bytesIn), 0);
      assert.ok(uploaded < MiB, `only small blobs went up again (${uploaded} bytes), not the 52 MiB layer`);
    });

    it('a client whose cache names a repository that no longer has the blobs still pushes', async () => {
      // Unlink the layers from e2e/second: skopeo's blob cache still says they are there.
      for (const layer of image.layers) {
        const response = await rawRequest(server.port, 'DELETE', `/v2/e2e/second/blobs/${layer.digest}`);
        assert.equal(response.status, 202);
      }
      await rawRequest(server.port, 'DELETE', `/v2/e2e/app/blobs/${image.layers[1]!.digest}`);
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://${host}/e2e/third:v1`);
      const out = path.join(directory, 'out-third');
      await skopeo('copy', '--src-tls-verify=false', `docker://${host}/e2e/third:v1`, `oci:${out}:v1`);
      for (const layer of image.layers) {
        assert.equal(await fileDigest(path.join(out, 'blobs', 'sha256', layer.digest.slice(7))), layer.digest);
      }
    });

    it('copies a two-platform index with --all and keeps the index digest', async () => {
      const multi = new OciLayout(path.join(directory, 'multi'));
      const amd64 = await multi.addImage({ layers: [{ files: [{ name: 'amd64.txt', size: 4000 }] }], architecture: 'amd64' });
      const arm64 = await multi.addImage({ layers: [{ files: [{ name: 'arm64.txt', size: 4000 }] }], architecture: 'arm64' });
      const index = await multi.addIndex([amd64, arm64]);
      await multi.tag(index, 'multi');
      await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${multi.directory}:multi`, `docker://${host}/e2e/multi:v1`);
      const head = await rawRequest(server.port, 'HEAD', '/v2/e2e/multi/manifests/v1', {
        headers: { Accept: 'application/vnd.oci.image.index.v1+json' },
      });
      assert.equal(head.headers['docker-content-digest'], index.digest);
      const raw = (await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${host}/e2e/multi:v1`)).stdout;
      assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, index.digest);
      const out = path.join(directory, 'out-multi');
      await skopeo('copy', '--all', '--src-tls-verify=false', `docker://${host}/e2e/multi:v1`, `oci:${out}:v1`);
      const outIndex = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      assert.equal(outIndex.manifests[0]?.digest, index.digest);
      for (const child of [amd64, arm64]) assert.equal(await fileDigest(path.join(out, 'blobs', 'sha256', child.digest.slice(7))), child.digest);
    });

    it('lists tags and deletes an image', async () => {
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://${host}/e2e/app:v2`);
      const listed = JSON.parse((await skopeo('list-tags', '--tls-verify=false', `docker://${host}/e2e/app`)).stdout) as { Tags: string[] };
      assert.deepEqual(listed.Tags, ['v1', 'v2']);
      await skopeo('delete', '--tls-verify=false', `docker://${host}/e2e/app:v1`);
      const after = JSON.parse((await skopeo('list-tags', '--tls-verify=false', `docker://${host}/e2e/app`)).stdout) as { Tags: string[] };
      assert.deepEqual(after.Tags, [], 'deleting the manifest removes every tag pointing at it');
      const gone = await rawRequest(server.port, 'GET', `/v2/e2e/app/manifests/${image.digest}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(gone.status, 404);
    });
  });
}
