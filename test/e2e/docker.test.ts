import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDockerDaemon, type DockerDaemon } from '../helpers/docker-daemon.js';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const skip = missingClients('skopeo', 'dockerd', 'docker');

describe('docker push and pull against a running registry', { skip }, () => {
  let directory: string;
  let daemon: DockerDaemon;
  let server: ServerProcess;
  let host: string;
  let image: BlobDescriptor & { config: BlobDescriptor };

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-docker-'));
    daemon = await startDockerDaemon(path.join(directory, 'docker'));
    server = await startServerProcess({ root: path.join(directory, 'storage') });
    host = `127.0.0.1:${server.port}`;
    const layout = new OciLayout(path.join(directory, 'layout'));
    image = await layout.addImage({
      layers: [{ files: [{ name: 'etc/motd', size: 1000 }] }, { files: [{ name: 'opt/data.bin', size: 6 * MiB }] }],
    });
    await layout.tag(image, 'v1');
    // Load the layout's image into the private daemon.
    await run('skopeo', ['copy', '--dest-daemon-host', `unix://${daemon.socket}`, `oci:${layout.directory}:v1`, 'docker-daemon:e2e/local:v1']);
  });
  after(async () => {
    await server?.stop();
    await daemon?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('docker push, then docker pull gives back the same image', async () => {
    await daemon.docker(['tag', 'e2e/local:v1', `${host}/docker/app:v1`]);
    const pushed = await daemon.docker(['push', `${host}/docker/app:v1`]);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed)?.[1];
    assert.ok(digest, pushed);
    const head = await rawRequest(server.port, 'HEAD', '/v2/docker/app/manifests/v1', {
      headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], digest);

    await daemon.docker(['rmi', `${host}/docker/app:v1`, 'e2e/local:v1']);
    const pulled = await daemon.docker(['pull', `${host}/docker/app:v1`]);
    assert.match(pulled, new RegExp(`Digest: ${digest}`));
    const id = (await daemon.docker(['image', 'inspect', '--format', '{{.Id}}', `${host}/docker/app:v1`])).trim();
    assert.equal(id, image.config.digest, 'the image id (config digest) survived the round trip');
  });

  it('pushing to a second repository mounts the layers instead of uploading them', async () => {
    await daemon.docker(['tag', `${host}/docker/app:v1`, `${host}/docker/second:v1`]);
    const pushed = await daemon.docker(['push', `${host}/docker/second:v1`]);
    assert.match(pushed, /Mounted from docker\/app/);
    assert.doesNotMatch(pushed, /: Pushed/);
  });

  it('a daemon whose cache names repositories this registry does not have still pushes', async () => {
    // A new registry with empty storage on the same address: the daemon still remembers docker/app.
    const port = server.port;
    await server.stop();
    server = await startServerProcess({ root: path.join(directory, 'storage-new'), env: { REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` } });
    await daemon.docker(['tag', `${host}/docker/app:v1`, `${host}/docker/third:v1`]);
    const pushed = await daemon.docker(['push', `${host}/docker/third:v1`]);
    assert.match(pushed, /digest: sha256:/);
    await daemon.docker(['rmi', `${host}/docker/third:v1`]);
    await daemon.docker(['pull', `${host}/docker/third:v1`]);
  });
});
