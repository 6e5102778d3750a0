import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDistribution, distributionForTests, type RunningDistribution } from '../helpers/distribution.js';
import { startDockerDaemon, type DockerDaemon } from '../helpers/docker-daemon.js';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { OciLayout } from '../helpers/oci-layout.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const distribution = distributionForTests();
const skip = distribution.skip ?? missingClients('skopeo', 'dockerd', 'docker');
/** What is left in Distribution after the pushes and the delete below, as clients name it. */
const kept = ['team/app:v1', 'team/app:multi', 'other/tool:v1'];

/** Every file skopeo wrote for an image (manifests, config, layers), by name, as SHA-256. */
async function filesOf(directory: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(directory)).sort()) files[name] = createHash('sha256').update(await readFile(path.join(directory, name))).digest('hex');
  return files;
}

/**
 * Someone who ran CNCF Distribution 2.8.3 moves to this registry on the same storage root: images
 * pushed into Distribution (an image, a multi-arch index, a tag deleted, two repositories sharing
 * layers) are migrated with `registry metadata rebuild`, pulled back byte for byte by skopeo and
 * docker, and Distribution still serves them when started again on the same root.
 */
describe('moving from Distribution: its storage root read as it is, and Distribution can come back', { skip }, () => {
  let directory: string;
  let root: string;
  let peer: RunningDistribution | null = null;
  let server: ServerProcess | null = null;
  let daemon: DockerDaemon;
  let env: Record<string, string>;
  const digests = new Map<string, string>();
  /** What skopeo copied from Distribution before the migration. */
  let pulledBefore: Record<string, Record<string, string>>;
  let s3: S3TestServer | null = null;
  const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 300_000 });
  /** Copies every tag kept (all platforms) from a registry into dir: folders under `into`. */
  const copyAll = async (port: number, into: string) => {
    const copied: Record<string, Record<string, string>> = {};
    await mkdir(path.join(directory, into), { recursive: true });
    for (const reference of kept) {
      const target = path.join(directory, into, reference.replace(/[/:]/g, '_'));
      await skopeo('copy', '--all', '--src-tls-verify=false', `docker://127.0.0.1:${port}/${reference}`, `dir:${target}`);
      copied[reference] = await filesOf(target);
    }
    return copied;
  };

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-from-distribution-'));
    root = path.join(directory, 'root');
    peer = await startDistribution(distribution.binary, directory, { root });
    const host = `127.0.0.1:${peer.port}`;
    const layout = new OciLayout(path.join(directory, 'layout'));
    const amd64 = await layout.addImage({ layers: [{ files: [{ name: 'usr/bin/app', size: 200_000 }] }, { files: [{ name: 'etc/app.conf', size: 3000 }] }] });
    const arm64 = await layout.addImage({ layers: [{ files: [{ name: 'usr/bin/app', size: 190_000 }] }], architecture: 'arm64' });
    const old = await layout.addImage({ layers: [{ files: [{ name: 'old.txt', size: 5000 }] }] });
    await layout.tag(amd64, 'v1');
    await layout.tag(await layout.addIndex([amd64, arm64]), 'multi');
    await layout.tag(old, 'old');
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://${host}/team/app:v1`);
    await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${layout.directory}:multi`, `docker://${host}/team/app:multi`);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:old`, `docker://${host}/team/app:old`);
    // The same image in a second repository: Distribution mounts its layers.
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:v1`, `docker://${host}/other/tool:v1`);
    await skopeo('delete', '--tls-verify=false', `docker://${host}/team/app:old`);
    for (const reference of kept) {
      const raw = (await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/${reference}`)).stdout;
      digests.set(reference, `sha256:${createHash('sha256').update(raw).digest('hex')}`);
    }
    env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_DATABASE_URL: `sqlite:${path.join(directory, 'registry.db')}` };
    daemon = await startDockerDaemon(path.join(directory, 'docker'));
  });
  after(async () => {
    await server?.stop();
    await peer?.stop();
    await daemon?.stop();
    await s3?.dispose();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('stopped, migrated, then skopeo and docker pull every tag with the same digests and bytes; Distribution then serves them again', async () => {
    pulledBefore = await copyAll(peer!.port, 'from-distribution');
    await peer!.stop();
    peer = null;

    const rebuild = await runRegistryCommand(['metadata', 'rebuild'], env);
    assert.equal(rebuild.code, 0, rebuild.stdout + rebuild.stderr);
    assert.match(rebuild.stdout, /read Distribution's layout at docker\/registry\/v2\/: 2 repositories, 4 manifests, 3 tags, \d+ layer links/);
    assert.match(rebuild.stdout, /Distribution's files are unchanged/);
    assert.match(rebuild.stdout, /2 repositories, 4 manifests, 3 tags/);

    server = await startServerProcess({ root, env });
    const ours = await copyAll(server.port, 'from-registry');
    assert.deepEqual(ours, pulledBefore, 'every manifest, config and layer byte for byte');
    for (const reference of kept) {
      const head = await fetch(`http://127.0.0.1:${server.port}/v2/${reference.replace(':', '/manifests/')}`, {
        method: 'HEAD',
        headers: { Accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(head.headers.get('docker-content-digest'), digests.get(reference), reference);
    }
    const gone = await fetch(`http://127.0.0.1:${server.port}/v2/team/app/manifests/old`, { method: 'HEAD' });
    assert.equal(gone.status, 404, 'the tag deleted in Distribution stays deleted');
    const tags = (await (await fetch(`http://127.0.0.1:${server.port}/v2/team/app/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['multi', 'v1']);
    for (const reference of ['team/app:v1', 'team/app:multi', 'other/tool:v1']) {
      const pulled = await daemon.docker(['pull', `127.0.0.1:${server.port}/${reference}`]);
      assert.match(pulled, new RegExp(`Digest: ${digests.get(reference)}`), reference);
    }
    await server.stop();
    server = null;

    peer = await startDistribution(distribution.binary, directory, { root });
    assert.deepEqual(await copyAll(peer.port, 'from-distribution-again'), pulledBefore, 'Distribution reads its root as before');
  });

  it('the same layout in an S3 bucket, under storage.s3.rootdirectory, is read alike with server-side copies, leaving Distribution\'s keys as they were', async () => {
    s3 = await startS3Server();
    await s3.createBucket('from-distribution');
    // Distribution's S3 driver writes the keys its filesystem driver writes, under the root directory.
    const tree = path.join(root, 'docker');
    for (const relative of (await readdir(tree, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)))) {
      await s3.client.send(new PutObjectCommand({ Bucket: 'from-distribution', Key: `reg/${relative}`, Body: await readFile(path.join(root, relative)) }));
    }
    const theirs = (await s3.keys('from-distribution', 'reg/docker/')).sort();
    const s3Env = s3.registryEnv('from-distribution', { REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/reg', REGISTRY_DATABASE_URL: `sqlite:${path.join(directory, 's3.db')}` });
    const rebuild = await runRegistryCommand(['metadata', 'rebuild'], s3Env);
    assert.equal(rebuild.code, 0, rebuild.stdout + rebuild.stderr);
    assert.match(rebuild.stdout, /read Distribution's layout at docker\/registry\/v2\/: 2 repositories, 4 manifests, 3 tags/);
    server = await startServerProcess({ root: path.join(directory, 'unused'), env: s3Env });
    assert.deepEqual(await copyAll(server.port, 'from-registry-on-s3'), pulledBefore, 'byte for byte from the bucket');
    await server.stop();
    server = null;
    assert.deepEqual((await s3.keys('from-distribution', 'reg/docker/')).sort(), theirs, "Distribution's keys, neither changed nor added to");
    assert.ok((await s3.keys('from-distribution', 'reg/blobs/')).length > 0, "the registry's own blob keys, copied in the bucket");
  });

  it('a root holding what neither Distribution nor this registry writes is named, and the rebuild exits 1', async () => {
    const junk = path.join(directory, 'junk');
    await mkdir(path.join(junk, 'backups'), { recursive: true });
    await writeFile(path.join(junk, 'backups', 'images.tar'), 'not a registry');
    const rebuild = await runRegistryCommand(['metadata', 'rebuild'], { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: junk, REGISTRY_DATABASE_URL: `sqlite:${path.join(directory, 'junk.db')}` });
    assert.equal(rebuild.code, 1, rebuild.stdout + rebuild.stderr);
    assert.match(rebuild.stdout, /0 repositories, 0 manifests, 0 tags/);
    assert.match(rebuild.stdout, /skipped backups\/images\.tar: not part of a layout Distribution or this registry writes/);
  });
});
