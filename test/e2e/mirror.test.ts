import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { startDockerDaemon, type DockerDaemon } from '../helpers/docker-daemon.js';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';
import { ageMirrorCache } from '../helpers/mirror-time.js';

const MiB = 1024 * 1024;
const skip = missingClients('skopeo');
const mirrorPassword = 'mirror-pull-secret';
const pusherPassword = 'pusher-secret';

type Image = BlobDescriptor & { layers: BlobDescriptor[]; config: BlobDescriptor };

/** The sha256 of a manifest as skopeo reads it (the digest a pull records). */
async function remoteDigest(reference: string, options: { global?: string[]; inspect?: string[] } = {}): Promise<string> {
  const raw = await run('skopeo', [...(options.global ?? []), 'inspect', '--raw', '--tls-verify=false', ...(options.inspect ?? []), reference], { timeoutMs: 120_000 });
  return `sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`;
}

describe('pull-through mirror with real clients', { skip }, () => {
  let directory: string;
  let upstream: ServerProcess;
  let upstreamPort: number;
  let upstreamEnv: Record<string, string>;
  let mirror: ServerProcess;
  let mirrorHost: string;
  let layout: OciLayout;
  let tool: Image;
  let big: Image;
  const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 600_000 });
  const pushUpstream = (tag: string, target: string) =>
    skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `pusher:${pusherPassword}`, `oci:${layout.directory}:${tag}`, `docker://127.0.0.1:${upstreamPort}/${target}`);
  const upstreamBlobGets = (digest: string) =>
    upstream.logs.filter((entry) => entry.msg === 'request' && entry.route === 'blob.get' && entry.status === 200 && String(entry.path).endsWith(digest)).length;

  async function startUpstream(port = 0): Promise<void> {
    upstream = await startServerProcess({ root: path.join(directory, 'upstream'), env: { ...upstreamEnv, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` } });
    upstreamPort = upstream.port;
  }

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-mirror-e2e-'));
    const policy = path.join(directory, 'policy.yaml');
    await writeFile(
      policy,
      [
        'users:',
        `  pusher: { password: "${bcrypt.hashSync(pusherPassword, 4)}" }`,
        `  mirror: { password: "${bcrypt.hashSync(mirrorPassword, 4)}" }`,
        'rules:',
        '  - { accounts: [pusher], repositories: ["**"], actions: [pull, push, delete] }',
        '  - { accounts: [mirror], repositories: ["**"], actions: [pull] }',
        '',
      ].join('\n'),
    );
    upstreamEnv = { REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: policy };
    await startUpstream();
    layout = new OciLayout(path.join(directory, 'layout'));
    tool = await layout.addImage({ layers: [{ files: [{ name: 'bin/tool', size: 300_000 }] }] });
    await layout.tag(tool, 'tool');
    big = await layout.addImage({ layers: [{ files: [{ name: 'opt/big.bin', size: 64 * MiB }] }] });
    await layout.tag(big, 'big');
    const moved = await layout.addImage({ layers: [{ files: [{ name: 'bin/tool', size: 200_000 }] }] });
    await layout.tag(moved, 'moved');
    const corrupt = await layout.addImage({ layers: [{ files: [{ name: 'bin/broken', size: 500_000 }] }] });
    await layout.tag(corrupt, 'corrupt');
    await pushUpstream('tool', 'library/tool:v1');
    await pushUpstream('tool', 'team-a/app:v1');

    const config = path.join(directory, 'mirror.yaml');
    await writeFile(
      config,
      [
        'mirror:',
        '  default: docker.io',
        '  failurethreshold: 2',
        '  cooloff: 60s',
        '  upstreams:',
        '    docker.io:',
        `      url: http://127.0.0.1:${upstreamPort}`,
        '      prefix: dockerhub',
        '      username: mirror',
        '      ttl: 5s',
        '      timeout: 5s',
        // The same upstream again, under a name only containerd's ?ns=quay.io reaches (no prefix is used for it).
        '    quay.io:',
        `      url: http://127.0.0.1:${upstreamPort}`,
        '      prefix: quay',
        '      username: mirror',
        '      timeout: 5s',
        '',
      ].join('\n'),
    );
    mirror = await startServerProcess({
      root: path.join(directory, 'mirror'),
      env: { REGISTRY_CONFIG: config, REGISTRY_MIRROR_UPSTREAMS_DOCKER_IO_PASSWORD: mirrorPassword, REGISTRY_MIRROR_UPSTREAMS_QUAY_IO_PASSWORD: mirrorPassword },
    });
    mirrorHost = `127.0.0.1:${mirror.port}`;
  });
  after(async () => {
    await mirror?.stop();
    await upstream?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('skopeo pulls through the mirror by path prefix, and through registries.conf as podman would; digests identical', async () => {
    assert.equal(await remoteDigest(`docker://127.0.0.1:${upstreamPort}/team-a/app:v1`, { inspect: ['--creds', `pusher:${pusherPassword}`] }), tool.digest);
    const out = path.join(directory, 'out-prefix');
    await skopeo('copy', '--src-tls-verify=false', `docker://${mirrorHost}/dockerhub/team-a/app:v1`, `oci:${out}:v1`);
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]?.digest, tool.digest);
    for (const layer of tool.layers) {
      const bytes = await readFile(path.join(out, 'blobs', 'sha256', layer.digest.slice('sha256:'.length)));
      assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, layer.digest);
    }
    const registriesConf = path.join(directory, 'registries.conf');
    await writeFile(
      registriesConf,
      ['[[registry]]', 'prefix = "docker.io"', 'location = "docker.io"', '[[registry.mirror]]', `location = "${mirrorHost}/dockerhub"`, 'insecure = true', ''].join('\n'),
    );
    assert.equal(await remoteDigest('docker://docker.io/library/tool:v1', { global: ['--registries-conf', registriesConf] }), tool.digest);
  });

  it('serves containerd\'s ?ns=docker.io form from the same cache', async () => {
    const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
    const manifest = await rawRequest(mirror.port, 'GET', '/v2/library/tool/manifests/v1?ns=docker.io', { headers: { Accept: accept } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers['docker-content-digest'], tool.digest);
    for (const blob of [tool.config, ...tool.layers]) {
      const response = await rawRequest(mirror.port, 'GET', `/v2/library/tool/blobs/${blob.digest}?ns=docker.io`);
      assert.equal(response.status, 200);
      assert.equal(`sha256:${createHash('sha256').update(response.body).digest('hex')}`, blob.digest);
    }
  });

  describe('containerd with a hosts.toml mirror', { skip: missingClients('containerd', 'ctr') }, () => {
    let containerd: Containerd;
    before(async () => {
      containerd = await startContainerd(path.join(directory, 'containerd'));
    });
    after(async () => containerd?.stop());

    it('fetches an image of another registry through the mirror: containerd sends ?ns=quay.io and the quay.io upstream answers', async () => {
      const hostsDir = path.join(directory, 'certs.d');
      await mkdir(path.join(hostsDir, 'quay.io'), { recursive: true });
      // The server itself is unreachable: whatever arrives came through the mirror.
      await writeFile(
        path.join(hostsDir, 'quay.io', 'hosts.toml'),
        ['server = "http://127.0.0.1:9"', '', `[host."http://${mirrorHost}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
      );
      const statusOf = async (name: string) => {
        const status = (await rawRequest(mirror.port, 'GET', '/api/v1/mirror/status')).json() as { upstreams: Array<{ name: string; upstreamRequests: number }> };
        return status.upstreams.find((upstream) => upstream.name === name)!;
      };
      const before = await statusOf('quay.io');
      await containerd.ctr(['content', 'fetch', '--hosts-dir', hostsDir, 'quay.io/team-a/app:v1']);
      const held = await containerd.ctr(['content', 'ls', '--quiet']);
      for (const digest of [tool.digest, tool.config.digest, ...tool.layers.map((layer) => layer.digest)]) {
        assert.ok(held.includes(digest), `containerd holds ${digest}`);
      }
      assert.ok((await statusOf('quay.io')).upstreamRequests > before.upstreamRequests, 'the quay.io upstream was asked: the mirror read ?ns=quay.io');
      assert.ok(mirror.logs.some((entry) => entry.msg === 'request' && entry.path === '/v2/team-a/app/manifests/v1'), 'containerd asked the mirror by the plain name');
    });
  });

  describe('docker with registry-mirrors', { skip: missingClients('dockerd', 'docker') }, () => {
    let daemon: DockerDaemon;
    before(async () => {
      daemon = await startDockerDaemon(path.join(directory, 'docker'), ['--registry-mirror', `http://${mirrorHost}`]);
    });
    after(async () => daemon?.stop());

    it('pulls an image by its plain name through the mirror, and again with the upstream stopped', async () => {
      await daemon.docker(['pull', 'tool:v1']);
      const id = (await daemon.docker(['image', 'inspect', '--format', '{{.Id}}', 'tool:v1'])).trim();
      assert.equal(id, tool.config.digest);
      assert.ok(mirror.logs.some((entry) => entry.msg === 'request' && entry.path === '/v2/library/tool/manifests/v1'), 'docker asked the mirror');
      await upstream.stop();
      try {
        await daemon.docker(['rmi', 'tool:v1']);
        const started = Date.now();
        await daemon.docker(['pull', 'tool:v1']);
        process.stdout.write(`# docker pull from the mirror with the upstream stopped: ${Date.now() - started} ms\n`);
        assert.equal((await daemon.docker(['image', 'inspect', '--format', '{{.Id}}', 'tool:v1'])).trim(), tool.config.digest);
      } finally {
        await startUpstream(upstreamPort);
      }
    });
  });

  it('keeps serving cached images by prefix when the upstream is down, long after the TTL; uncached ones fail with a clear message', async () => {
    await upstream.stop();
    try {
      // An hour later, for the cache: every tag is long past its 5 s TTL.
      ageMirrorCache(path.join(directory, 'mirror', 'registry.db'), 3_600_000);
      const started = Date.now();
      const out = path.join(directory, 'out-offline');
      await skopeo('copy', '--src-tls-verify=false', `docker://${mirrorHost}/dockerhub/team-a/app:v1`, `oci:${out}:v1`);
      process.stdout.write(`# skopeo copy from the mirror with the upstream stopped: ${Date.now() - started} ms\n`);
      const failed = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${mirrorHost}/dockerhub/team-a/never:v1`]).then(
        () => '',
        (error: Error) => error.message,
      );
      assert.match(failed, /503/);
      const explained = await rawRequest(mirror.port, 'GET', '/v2/dockerhub/team-a/never/manifests/v1');
      assert.equal(explained.status, 503);
      assert.match(explained.body.toString(), /upstream docker\.io \(http:\/\/127\.0\.0\.1:\d+\) cannot serve team-a\/never/);
      const status = JSON.parse((await rawRequest(mirror.port, 'GET', '/api/v1/mirror/status')).body.toString()) as { upstreams: Array<{ state: string; staleServed: number }> };
      assert.equal(status.upstreams[0]?.state, 'unreachable');
      assert.ok((status.upstreams[0]?.staleServed ?? 0) > 0);
      const staleLines = mirror.logs.filter((entry) => entry.msg === 'served a stale mirrored tag');
      assert.ok(staleLines.length > 0, 'stale answers are logged');
    } finally {
      await startUpstream(upstreamPort);
    }
  });

  it('sees a tag moved upstream once its TTL has passed', async () => {
    // The circuit opened while the upstream was down (60 s cool-off); a restarted mirror starts with it closed.
    await mirror.stop();
    mirror = await startServerProcess({ root: path.join(directory, 'mirror'), env: { ...mirrorEnv() } });
    mirrorHost = `127.0.0.1:${mirror.port}`;
    const cachedAt = Date.now();
    assert.equal(await remoteDigest(`docker://${mirrorHost}/dockerhub/team-a/app:v1`), tool.digest);
    await pushUpstream('moved', 'team-a/app:v1');
    const moved = JSON.parse(await readFile(path.join(layout.directory, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
    const movedDigest = moved.manifests.find((entry) => entry.annotations?.['org.opencontainers.image.ref.name'] === 'moved')?.digest;
    assert.equal(await remoteDigest(`docker://${mirrorHost}/dockerhub/team-a/app:v1`), tool.digest, 'fresh within the TTL');
    assert.ok(Date.now() - cachedAt < 5000, 'the freshness check above ran within the TTL (else it proved nothing)');
    ageMirrorCache(path.join(directory, 'mirror', 'registry.db'), 5100);
    assert.equal(await remoteDigest(`docker://${mirrorHost}/dockerhub/team-a/app:v1`), movedDigest);
    assert.ok(mirror.logs.some((entry) => entry.msg === 'mirrored tag moved upstream' && entry.to === movedDigest));
  });

  it('10 concurrent pulls of an uncached 64 MiB layer cause one upstream fetch', async () => {
    await pushUpstream('big', 'team-a/big:v1');
    const layer = big.layers[0]!;
    assert.ok(layer.size > 60 * MiB);
    const before = upstreamBlobGets(layer.digest);
    await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        skopeo('copy', '--src-tls-verify=false', `docker://${mirrorHost}/dockerhub/team-a/big:v1`, `oci:${path.join(directory, `out-big-${index}`)}:v1`),
      ),
    );
    assert.equal(upstreamBlobGets(layer.digest) - before, 1);
  });

  it('an upstream serving wrong bytes leaves nothing cached', async () => {
    await pushUpstream('corrupt', 'team-a/corrupt:v1');
    const corruptImage = JSON.parse(await readFile(path.join(layout.directory, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
    const manifestDigest = corruptImage.manifests.find((entry) => entry.annotations?.['org.opencontainers.image.ref.name'] === 'corrupt')!.digest;
    const manifest = JSON.parse(await readFile(path.join(layout.directory, 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8')) as { layers: Array<{ digest: string }> };
    const hex = manifest.layers[0]!.digest.slice('sha256:'.length);
    const stored = path.join(directory, 'upstream', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    const file = await open(stored, 'r+');
    const original = Buffer.alloc(1);
    await file.read(original, 0, 1, 1000);
    await file.write(Buffer.from([original[0]! ^ 0xff]), 0, 1, 1000);
    try {
      await assert.rejects(skopeo('copy', '--src-tls-verify=false', `docker://${mirrorHost}/dockerhub/team-a/corrupt:v1`, `oci:${path.join(directory, 'out-corrupt')}:v1`));
      const head = await rawRequest(mirror.port, 'GET', `/v2/dockerhub/team-a/corrupt/blobs/sha256:${hex}`, { headers: { Range: 'bytes=0-0' } });
      assert.equal(head.status, 503, 'still not cached: fetched again and refused again');
    } finally {
      await file.write(original, 0, 1, 1000);
      await file.close();
    }
    await skopeo('copy', '--src-tls-verify=false', `docker://${mirrorHost}/dockerhub/team-a/corrupt:v1`, `oci:${path.join(directory, 'out-fixed')}:v1`);
  });

  function mirrorEnv(): Record<string, string> {
    return { REGISTRY_CONFIG: path.join(directory, 'mirror.yaml'), REGISTRY_MIRROR_UPSTREAMS_DOCKER_IO_PASSWORD: mirrorPassword };
  }
});
