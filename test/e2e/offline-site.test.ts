import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { startDockerDaemon, type DockerDaemon } from '../helpers/docker-daemon.js';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { freePort } from '../helpers/ports.js';
import { rawRequest } from '../helpers/raw-http.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { pushSignature } from '../helpers/signatures.js';
import { missingClients, run } from '../helpers/tools.js';
import { ageMirrorCache } from '../helpers/mirror-time.js';

const skip = missingClients('skopeo', 'dockerd', 'docker', 'containerd', 'ctr');
const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

type Image = BlobDescriptor & { layers: BlobDescriptor[]; config: BlobDescriptor };

/**
 * The offline-site story as an operator lives it, with the commands docs/mirror.md gives: a connected
 * site mirrors Docker Hub (here a third registry, named docker.io in the configuration, holding
 * images pushed with skopeo), syncs a list and exports a bundle; an offline site whose configuration
 * names the same upstream at an address it cannot reach imports it; then docker (registry-mirrors),
 * containerd (hosts.toml, ?ns=docker.io) and skopeo (by prefix) pull the images by the names they use.
 * A week later a tag has moved upstream: an incremental bundle carries the change.
 */
describe('offline site: images carried in on a disk pull under the names clients ask for', { skip }, () => {
  let directory: string;
  let upstream: ServerProcess;
  let offline: ServerProcess;
  let docker: DockerDaemon;
  let containerd: Containerd;
  let alpine: Image;
  let alpineNext: Image;
  let busybox: BlobDescriptor;
  let busyboxImages: Image[];
  let signature: string;
  let offlineHost: string;
  const file = (name: string) => path.join(directory, name);
  const registry = async (args: string[]) => {
    const result = await runRegistryCommand(args, {});
    assert.equal(result.code, 0, `registry ${args.join(' ')}\n${result.stdout}\n${result.stderr}`);
    return result.stdout;
  };
  const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 300_000 });
  const siteConfig = (root: string, upstreamUrl: string) =>
    [
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${root}`,
      'mirror:',
      '  default: docker.io',
      '  failurethreshold: 1',
      '  cooloff: 10m',
      '  upstreams:',
      '    docker.io:',
      `      url: ${upstreamUrl}`,
      '      prefix: dockerhub',
      '      timeout: 10s',
      '      ttl: 1s',
      '',
    ].join('\n');

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-offline-site-'));
    upstream = await startServerProcess({ root: file('upstream') });
    const upstreamHost = `127.0.0.1:${upstream.port}`;
    const layout = new OciLayout(file('layout'));
    alpine = await layout.addImage({ layers: [{ files: [{ name: 'etc/alpine-release', size: 2_000 }, { name: 'bin/busybox', size: 900_000 }] }] });
    await layout.tag(alpine, 'alpine');
    busyboxImages = [
      await layout.addImage({ layers: [{ files: [{ name: 'bin/busybox', size: 600_000 }] }], architecture: 'amd64' }),
      await layout.addImage({ layers: [{ files: [{ name: 'bin/busybox', size: 650_000 }] }], architecture: 'arm64' }),
    ];
    busybox = await layout.addIndex(busyboxImages);
    await layout.tag(busybox, 'busybox');
    alpineNext = await layout.addImage({ layers: [{ files: [{ name: 'etc/alpine-release', size: 2_001 }, { name: 'bin/busybox', size: 910_000 }] }] });
    await layout.tag(alpineNext, 'alpine-next');
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:alpine`, `docker://${upstreamHost}/library/alpine:3.20`);
    await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${layout.directory}:busybox`, `docker://${upstreamHost}/library/busybox:1.36`);
    signature = await pushSignature(upstream.port, 'library/alpine', alpine);
    await writeFile(file('connected.yaml'), siteConfig(file('connected'), `http://${upstreamHost}`));
    await writeFile(file('offline.yaml'), siteConfig(file('offline'), `http://127.0.0.1:${await freePort()}`));
    await writeFile(file('images.yaml'), ['images:', '  - docker.io/library/alpine:3.20', '  - docker.io/library/busybox:1.36', ''].join('\n'));
  });
  after(async () => {
    await containerd?.stop();
    await docker?.stop();
    await offline?.stop();
    await upstream?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('at the connected site: sync, then export; export without the mirror configuration says which --config resolves the name', async () => {
    const synced = JSON.parse(await registry(['mirror', 'sync', '--file', file('images.yaml'), '--config', file('connected.yaml'), '--json'])) as Record<string, number>;
    // alpine (1 manifest, 2 blobs) and its signature (1 manifest, 1 blob); busybox (an index, 2 images of 2 blobs).
    assert.deepEqual({ images: synced.images, manifests: synced.manifests, blobs: synced.blobs }, { images: 2, manifests: 5, blobs: 7 });

    const names = ['dockerhub/library/alpine:3.20', 'dockerhub/library/busybox:1.36'];
    const withoutConfig = await runRegistryCommand(['export', '--out', file('bundle.tar'), ...names], { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: file('connected') });
    assert.equal(withoutConfig.code, 1);
    assert.match(withoutConfig.stderr, /dockerhub\/library\/alpine looks like a mirrored name \(path prefix dockerhub\)/);
    assert.match(withoutConfig.stderr, /the mirror cache here holds library\/alpine from upstream docker\.io/);
    assert.match(withoutConfig.stderr, /config\/mirror\.yaml does \(upstream docker\.io\): run the command with --config config\/mirror\.yaml/);

    const exported = JSON.parse(await registry(['export', '--config', file('connected.yaml'), '--out', file('bundle.tar'), ...names, '--json'])) as Record<string, number>;
    assert.deepEqual(
      { images: exported.images, manifests: exported.manifests, blobs: exported.blobs, bytes: exported.bytes },
      { images: synced.images, manifests: synced.manifests, blobs: synced.blobs, bytes: synced.bytes },
      'export counts what sync counted',
    );
    const text = await registry(['export', '--config', file('connected.yaml'), '--out', file('bundle-copy.tar'), ...names]);
    assert.match(text, /^exported 2 images: 5 manifests, 7 blobs \([\d.]+ (KiB|MiB)\) to /);
    process.stdout.write(`# ${text}`);
    const raw = await skopeo('inspect', '--raw', `oci-archive:${file('bundle.tar')}:dockerhub/library/alpine:3.20`);
    assert.equal(sha256(raw.stdout), alpine.digest, 'skopeo reads the bundle');
  });

  it('at the offline site: import fills the mirror cache of docker.io, and says how many of everything', async () => {
    const imported = JSON.parse(await registry(['import', file('bundle.tar'), '--config', file('offline.yaml'), '--json'])) as {
      images: number;
      manifests: number;
      blobs: number;
      blobsStored: number;
      tags: Record<string, number>;
    };
    assert.deepEqual({ images: imported.images, manifests: imported.manifests, blobs: imported.blobs, stored: imported.blobsStored }, { images: 2, manifests: 5, blobs: 7, stored: 7 });
    assert.equal(imported.tags.created, 2);
    offline = await startServerProcess({ root: file('offline'), env: { REGISTRY_CONFIG: file('offline.yaml') } });
    offlineHost = `127.0.0.1:${offline.port}`;
    // The operator checks the import: the catalog and the repository list name what the cache now holds, and nothing local.
    const catalog = (await rawRequest(offline.port, 'GET', '/v2/_catalog')).json() as { repositories: string[] };
    assert.deepEqual(catalog.repositories, ['dockerhub/library/alpine', 'dockerhub/library/busybox'], 'listed under the prefix clients pull by');
    const listed = (await rawRequest(offline.port, 'GET', '/api/v1/repositories')).json() as { repositories: Array<{ name: string; source: string; upstream: string | null; tags: number }> };
    assert.deepEqual(listed.repositories.map((row) => [row.name, row.source, row.upstream, row.tags]), [
      ['dockerhub/library/alpine', 'mirror', 'docker.io', 1],
      ['dockerhub/library/busybox', 'mirror', 'docker.io', 1],
    ]);
    const local = (await rawRequest(offline.port, 'GET', '/api/v1/repositories?source=local')).json() as { repositories: unknown[] };
    assert.deepEqual(local.repositories, [], 'no local repository: the images are in the mirror cache');
    const history = (await rawRequest(offline.port, 'GET', '/api/v1/mirror/history?repository=library/alpine')).json() as { events: Array<{ tag: string; to: string; action: string }> };
    assert.deepEqual(history.events.map((event) => [event.tag, event.to, event.action]), [['3.20', alpine.digest, 'imported']]);
  });

  it('docker with --registry-mirror pulls alpine and busybox by their plain names', async () => {
    docker = await startDockerDaemon(file('docker'), ['--registry-mirror', `http://${offlineHost}`]);
    await docker.docker(['pull', 'alpine:3.20']);
    assert.equal((await docker.docker(['image', 'inspect', '--format', '{{.Id}}', 'alpine:3.20'])).trim(), alpine.config.digest);
    await docker.docker(['pull', 'busybox:1.36']);
    assert.equal((await docker.docker(['image', 'inspect', '--format', '{{.Id}}', 'busybox:1.36'])).trim(), busyboxImages[0]!.config.digest, 'the linux/amd64 image of the index');
    assert.ok(offline.logs.some((entry) => entry.msg === 'request' && entry.path === '/v2/library/alpine/manifests/3.20'), 'docker asked the mirror by library/alpine');
    for (const name of ['alpine', 'library/alpine']) {
      const response = await rawRequest(offline.port, 'GET', `/v2/${name}/manifests/3.20`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(response.headers['docker-content-digest'], alpine.digest, name);
    }
  });

  it('containerd with a hosts.toml mirror fetches through ?ns=docker.io', async () => {
    containerd = await startContainerd(file('containerd'));
    const hostsDir = file('certs.d');
    await mkdir(path.join(hostsDir, 'docker.io'), { recursive: true });
    await writeFile(
      path.join(hostsDir, 'docker.io', 'hosts.toml'),
      [`server = "http://127.0.0.1:${await freePort()}"`, '', `[host."http://${offlineHost}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
    );
    await containerd.ctr(['content', 'fetch', '--all-platforms', '--hosts-dir', hostsDir, 'docker.io/library/busybox:1.36']);
    const held = await containerd.ctr(['content', 'ls', '--quiet']);
    for (const digest of [busybox.digest, ...busyboxImages.flatMap((image) => [image.digest, image.config.digest, ...image.layers.map((layer) => layer.digest)])]) {
      assert.ok(held.includes(digest), `containerd holds ${digest}`);
    }
    assert.ok(
      offline.logs.some((entry) => entry.msg === 'request' && entry.path === '/v2/library/busybox/manifests/1.36' && entry.query === 'ns=docker.io' && entry.status === 200),
      'containerd asked by the plain name with ?ns=docker.io',
    );
  });

  it('skopeo pulls by the path prefix, every digest as it was, and the signature is listed', async () => {
    const out = file('pulled');
    await skopeo('copy', '--all', '--src-tls-verify=false', `docker://${offlineHost}/dockerhub/library/busybox:1.36`, `oci:${out}:busybox`);
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]?.digest, busybox.digest);
    for (const image of busyboxImages) {
      for (const blob of [image, image.config, ...image.layers]) {
        assert.equal(sha256(await readFile(path.join(out, 'blobs', 'sha256', blob.digest.slice(7)))), blob.digest);
      }
    }
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${offlineHost}/dockerhub/library/alpine:3.20`);
    assert.equal(sha256(raw.stdout), alpine.digest);
    // skopeo inspect through registries.conf lists tags at docker.io itself, not at the mirror: --no-tags.
    const registriesConf = file('registries.conf');
    await writeFile(registriesConf, ['[[registry]]', 'prefix = "docker.io"', 'location = "docker.io"', '[[registry.mirror]]', `location = "${offlineHost}/dockerhub"`, 'insecure = true', ''].join('\n'));
    const inspected = JSON.parse((await run('skopeo', ['--registries-conf', registriesConf, 'inspect', '--no-tags', 'docker://docker.io/library/alpine:3.20'])).stdout) as { Digest: string };
    assert.equal(inspected.Digest, alpine.digest);
    const referrers = (await rawRequest(offline.port, 'GET', `/v2/dockerhub/library/alpine/referrers/${alpine.digest}`)).json() as { manifests: Array<{ digest: string }> };
    assert.deepEqual(referrers.manifests.map((entry) => entry.digest), [signature]);
  });

  it('a week later: the tag moved upstream; an incremental bundle, imported over HTTP, moves it offline too', async () => {
    await skopeo('copy', '--dest-tls-verify=false', `oci:${file('layout')}:alpine-next`, `docker://127.0.0.1:${upstream.port}/library/alpine:3.20`);
    ageMirrorCache(path.join(file('connected'), 'registry.db'), 1100); // past the connected site's TTL
    await registry(['mirror', 'sync', '--file', file('images.yaml'), '--config', file('connected.yaml')]);
    const names = ['dockerhub/library/alpine:3.20', 'dockerhub/library/busybox:1.36'];
    const second = JSON.parse(await registry(['export', '--config', file('connected.yaml'), '--since', file('bundle.tar'), '--out', file('bundle-2.tar'), ...names, '--json'])) as {
      blobs: number;
      blobsLeftOut: number;
      bytes: number;
      bytesLeftOut: number;
    };
    assert.equal(second.blobs - second.blobsLeftOut, 2, 'only the new alpine image\'s config and layer are carried');
    const first = (await readFile(file('bundle.tar'))).length;
    const incremental = (await readFile(file('bundle-2.tar'))).length;
    process.stdout.write(`# bundle sizes: first ${first} bytes, incremental ${incremental} bytes\n`);
    assert.ok(incremental < first, 'the incremental bundle is the smaller');

    // A site that never imported the first bundle cannot take the second alone.
    await writeFile(file('fresh.yaml'), siteConfig(file('fresh'), `http://127.0.0.1:${await freePort()}`));
    const refused = await runRegistryCommand(['import', file('bundle-2.tar'), '--config', file('fresh.yaml')], {});
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is an incremental bundle made after bundle [0-9a-f-]+ of .*import that bundle first/);
    const imported = await registry(['import', file('bundle-2.tar'), '--to', `http://${offlineHost}`]);
    process.stdout.write(`# ${imported}`);
    assert.match(imported, /mirrored tags: 0 new, 1 moved, 1 unchanged/);
    const history = (await rawRequest(offline.port, 'GET', '/api/v1/mirror/history?repository=library/alpine&tag=3.20')).json() as { events: Array<{ from: string | null; to: string; action: string }> };
    assert.deepEqual(history.events.map((event) => [event.from, event.to, event.action]), [
      [alpine.digest, alpineNext.digest, 'imported'],
      [null, alpine.digest, 'imported'],
    ]);
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${offlineHost}/dockerhub/library/alpine:3.20`);
    assert.equal(sha256(raw.stdout), alpineNext.digest);
    await docker.docker(['pull', 'alpine:3.20']);
    assert.equal((await docker.docker(['image', 'inspect', '--format', '{{.Id}}', 'alpine:3.20'])).trim(), alpineNext.config.digest, 'docker pulls the moved tag');
  });
});
