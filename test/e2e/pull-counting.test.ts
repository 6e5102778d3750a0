import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { startDockerDaemon, type DockerDaemon } from '../helpers/docker-daemon.js';
import { OciLayout } from '../helpers/oci-layout.js';
import { rawRequest } from '../helpers/raw-http.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const skip = missingClients('skopeo', 'podman', 'dockerd', 'docker', 'containerd', 'ctr');
const policies = JSON.stringify([{ repositories: ['team/**'], keep: { pulledWithin: '1h' } }]);
const clients = ['docker', 'podman', 'skopeo', 'containerd'] as const;

/**
 * An operator keeps what is pulled: a retention policy with pulledWithin must keep a tag that any
 * client pulls, whether it fetches the manifest by tag (podman, skopeo) or resolves the tag with a
 * HEAD and fetches by digest (docker, containerd). All tags name one image, so only the tag each
 * client asked for can tell them apart.
 */
describe('a tag pulled by docker, podman, skopeo or containerd is kept by retention\'s pulledWithin', { skip }, () => {
  let directory: string;
  let server: ServerProcess;
  let daemon: DockerDaemon;
  let containerd: Containerd;
  let host: string;
  let env: Record<string, string>;

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-pulls-'));
    env = {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage'),
      REGISTRY_AUDIT_PULLS: 'true',
      REGISTRY_AUDIT_PULLFLUSH: '100ms',
      REGISTRY_RETENTION_POLICIES: policies,
    };
    server = await startServerProcess({ root: env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY!, env });
    host = `127.0.0.1:${server.port}`;
    const layout = new OciLayout(path.join(directory, 'layout'));
    await layout.tag(await layout.addImage({ layers: [{ files: [{ name: 'srv/index.html', size: 2000 }] }] }), 'web');
    for (const tag of [...clients, 'never-pulled']) {
      await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.directory}:web`, `docker://${host}/team/web:${tag}`], { timeoutMs: 120_000 });
    }
    [daemon, containerd] = await Promise.all([startDockerDaemon(path.join(directory, 'docker')), startContainerd(path.join(directory, 'containerd'))]);
  });
  after(async () => {
    await daemon?.stop();
    await containerd?.stop();
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('each client pulls its tag; the tags show when they were last pulled, and a dry run deletes only the tag never pulled', async () => {
    await daemon.docker(['pull', `${host}/team/web:docker`]);
    const podmanRoot = path.join(directory, 'podman');
    await run('podman', ['--storage-driver', 'vfs', '--root', path.join(podmanRoot, 'root'), '--runroot', path.join(podmanRoot, 'run'), 'pull', '--tls-verify=false', `${host}/team/web:podman`], { timeoutMs: 300_000 });
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/team/web:skopeo`, `dir:${path.join(directory, 'copied')}`], { timeoutMs: 120_000 });
    await containerd.ctr(['images', 'pull', '--plain-http', `${host}/team/web:containerd`]);

    // Pulls are written every audit.pullflush (100 ms here).
    const deadline = Date.now() + 20_000;
    let pulled: string[] = [];
    while (Date.now() < deadline) {
      const rows = (await rawRequest(server.port, 'GET', '/api/v1/repositories/team/web/-/tags')).json() as { tags: Array<{ name: string; pulledAt: string | null }> };
      pulled = rows.tags.filter((row) => row.pulledAt !== null).map((row) => row.name).sort();
      if (pulled.length >= clients.length) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(pulled, [...clients].sort(), 'each client\'s tag, and no other, was pulled');

    const dry = await runRegistryCommand(['retention', 'run', '--dry-run', '--json'], env);
    assert.equal(dry.code, 0, dry.stderr);
    const planned = (JSON.parse(dry.stdout) as { deleted: Array<{ repository: string; tag: string }> }).deleted.map((entry) => `${entry.repository}:${entry.tag}`);
    assert.deepEqual(planned, ['team/web:never-pulled']);
  });
});
