import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const skip = missingClients('podman');

describe('podman push and pull against a running registry', { skip }, () => {
  let directory: string;
  let server: ServerProcess;
  let host: string;
  let image: BlobDescriptor & { config: BlobDescriptor };
  let layoutDirectory: string;
  const podman = async (...args: string[]) =>
    (
      await run(
        'podman',
        ['--storage-driver', 'vfs', '--root', path.join(directory, 'root'), '--runroot', path.join(directory, 'run'), ...args],
        { timeoutMs: 300_000 },
      )
    ).stdout;

  before(async () => {
    // podman names an image pulled from oci:DIR after DIR, and image names must be lower case.
    directory = path.join(tmpdir(), `registry-podman-${randomBytes(6).toString('hex')}`);
    await mkdir(directory);
    server = await startServerProcess({ root: path.join(directory, 'storage') });
    host = `127.0.0.1:${server.port}`;
    const layout = new OciLayout(path.join(directory, 'layout'));
    layoutDirectory = layout.directory;
    image = await layout.addImage({ layers: [{ files: [{ name: 'etc/issue', size: 500 }] }, { files: [{ name: 'opt/data.bin', size: 3 * 1024 * 1024 }] }] });
    await layout.tag(image, 'v1');
  });
  after(async () => {
    await server?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('podman push, then podman pull gives back the same image', async () => {
    await podman('pull', `oci:${layoutDirectory}:v1`);
    await podman('tag', image.config.digest.slice(7), `${host}/podman/app:v1`);
    await podman('push', '--tls-verify=false', `${host}/podman/app:v1`);
    const tags = await rawRequest(server.port, 'GET', '/v2/podman/app/tags/list');
    assert.deepEqual(tags.json(), { name: 'podman/app', tags: ['v1'] });
    await podman('rmi', '--all', '--force');
    await podman('pull', '--tls-verify=false', `${host}/podman/app:v1`);
    const id = (await podman('image', 'inspect', '--format', '{{.Id}}', `${host}/podman/app:v1`)).trim();
    assert.equal(`sha256:${id}`, image.config.digest, 'the image id (config digest) survived the round trip');
  });
});
