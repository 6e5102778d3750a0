import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { buildStandInNodeImage } from '../helpers/base-image.js';
import { fastestStorageDriver, startDockerDaemon, type DockerDaemon } from '../helpers/docker-daemon.js';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { freePort } from '../helpers/ports.js';
import { projectRoot } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const skip = missingClients('mmdebstrap', 'dockerd', 'docker', 'skopeo', 'htpasswd', 'git');
const baseImage = 'stand-in/node:lts-slim';
const image = 'oci-registry:e2e';
const drainTimeoutSeconds = 30;

/** What an operator does with docker/Dockerfile: build it, run it with a data volume, use it, stop it, run the next one. */
describe('the container image, built from docker/Dockerfile and run as registry:2 is run', { skip }, () => {
  let directory: string;
  let daemon: DockerDaemon;
  let layoutImage: BlobDescriptor & { config: BlobDescriptor };
  let layoutDirectory: string;
  let context: string;
  const containers: string[] = [];

  // The docker client keeps its login in the test's own directory, not in the user's ~/.docker.
  const docker = async (args: string[], input?: string) =>
    (await run('docker', args, { env: { ...daemon.env, DOCKER_CONFIG: path.join(directory, 'docker-client') }, timeoutMs: 300_000, ...(input === undefined ? {} : { input }) })).stdout;
  const inspect = async (target: string, format: string) => (await docker(['inspect', '--format', format, target])).trim();

  /** Polls the container's own HEALTHCHECK (the Dockerfile's schedule) until docker reports healthy. */
  async function waitHealthy(container: string, timeoutMs = 120_000): Promise<number> {
    const started = Date.now();
    for (;;) {
      const status = await inspect(container, '{{.State.Health.Status}}');
      if (status === 'healthy') return Date.now() - started;
      const running = await inspect(container, '{{.State.Running}}');
      if (status === 'unhealthy' || running !== 'true' || Date.now() - started > timeoutMs) {
        const logs = await run('docker', ['logs', container], { env: daemon.env }).catch((error: Error) => ({ stdout: '', stderr: error.message }));
        const probes = await inspect(container, '{{json .State.Health}}').catch(() => '');
        assert.fail(`container ${container} is ${status} (running: ${running}); health: ${probes}\n${logs.stdout}${logs.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async function runRegistry(name: string, port: number, volume: string, extra: string[] = []): Promise<void> {
    containers.push(name);
    await docker([
      'run', '--detach', '--name', name,
      '--network', 'host',
      '--read-only',
      '--stop-timeout', String(drainTimeoutSeconds + 10),
      '--volume', `${volume}:/var/lib/registry`,
      '--env', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`,
      ...extra,
      image,
    ]);
  }

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-image-'));
    const storageDriver = fastestStorageDriver(directory);
    daemon = await startDockerDaemon(path.join(directory, 'docker'), [], { storageDriver });

    let started = Date.now();
    await buildStandInNodeImage(daemon, baseImage);
    const baseSeconds = (Date.now() - started) / 1000;

    // The build context is a copy of the repository's files plus what a working directory collects:
    // a policy with password hashes, logs, data under storage/. None of it may reach the image.
    context = path.join(directory, 'context');
    const tracked = spawnSync('git', ['-C', projectRoot, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' });
    assert.equal(tracked.status, 0, tracked.stderr);
    for (const file of tracked.stdout.split('\0').filter(Boolean)) {
      await mkdir(path.dirname(path.join(context, file)), { recursive: true });
      await copyFile(path.join(projectRoot, file), path.join(context, file)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error; // deleted in the working tree, not yet in the index
      });
    }
    await writeFile(path.join(context, 'config/my-policy.yaml'), 'accounts:\n  alice: {password: "$2y$05$secret-hash"}\n');
    await writeFile(path.join(context, 'registry.log'), 'a log line\n');
    await writeFile(path.join(context, 'storage/registry.db'), 'not for the image');

    started = Date.now();
    await run('docker', ['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${baseImage}`, '--file', 'docker/Dockerfile', '--tag', image, context], {
      env: { ...daemon.env, DOCKER_BUILDKIT: '0' },
      timeoutMs: 1_800_000,
    });
    const buildSeconds = (Date.now() - started) / 1000;
    console.log(`stand-in base made in ${baseSeconds.toFixed(0)} s, image built in ${buildSeconds.toFixed(0)} s (dockerd storage driver ${storageDriver})`);

    layoutDirectory = path.join(directory, 'layout');
    const layout = new OciLayout(layoutDirectory);
    layoutImage = await layout.addImage({ layers: [{ files: [{ name: 'etc/motd', size: 1000 }] }, { files: [{ name: 'opt/app.bin', size: 4 * MiB }] }] });
    await layout.tag(layoutImage, 'v1');
  });

  after(async () => {
    for (const container of containers) await docker(['rm', '--force', container]).catch(() => {});
    await daemon?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('is small: production dependencies and the compiled server only, no compiler, no tests, no local files', async () => {
    const imageBytes = Number(await inspect(image, '{{.Size}}'));
    const baseBytes = Number(await inspect(baseImage, '{{.Size}}'));
    const addedMiB = (imageBytes - baseBytes) / MiB;
    console.log(`image size ${(imageBytes / MiB).toFixed(0)} MiB: base ${(baseBytes / MiB).toFixed(0)} MiB + registry ${addedMiB.toFixed(1)} MiB`);
    // Production node_modules are about 45 MiB; the dev dependencies (TypeScript, s3rver…) or the
    // binding's sources and object files would more than double it.
    assert.ok(addedMiB < 70, `the registry adds ${addedMiB.toFixed(1)} MiB to the base`);

    const shell = async (script: string) => (await docker(['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, '-c', script])).trim();
    assert.equal(await shell('for tool in g++ gcc cc c++ make python3; do command -v $tool; done; true'), '', 'no compiler or build tool in the final stage');
    const devDependencies = Object.keys((JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies);
    const present = await shell(`cd node_modules && for name in ${devDependencies.join(' ')}; do [ -e "$name" ] && echo "$name"; done; true`);
    assert.equal(present, '', 'no dev dependency in node_modules');
    assert.equal(await shell('find node_modules -mindepth 1 -maxdepth 1 -type d -empty'), '', 'no empty scope folders left by the prune');
    assert.equal(await shell('ls node_modules/better-sqlite3/build/Release'), 'better_sqlite3.node', 'only the compiled binding, not its sources and objects');

    const files = (await shell('find /app -path /app/node_modules -prune -o -print | sort')).split('\n');
    const unexpected = files.filter(
      (file) => !/^\/app(\/package\.json|\/node_modules|\/dist(\/src(\/.*\.js)?)?|\/dist\/src\/.+|\/dist\/ui(\/[a-z]+\.(js|css|html|svg))?|\/config(\/[a-z0-9-]+\.yaml)?)?$/.test(file),
    );
    assert.deepEqual(unexpected, [], 'only package.json, node_modules, dist/src, the built web UI (dist/ui) and config in /app');
    assert.ok(files.includes('/app/dist/src/main.js') && files.includes('/app/config/registry.yaml'));
    assert.ok(files.includes('/app/dist/ui/index.html') && files.includes('/app/dist/ui/app.js'), 'the web UI is in the image');
    for (const leaked of ['/app/config/my-policy.yaml', '/app/registry.log', '/app/storage/registry.db', '/app/dist/test', '/app/src', '/app/.ci']) {
      assert.ok(!files.includes(leaked), `${leaked} is in the image`);
    }
    assert.ok(!files.some((file) => file.endsWith('.map') || file.endsWith('.ts')), 'no sources or source maps');

    // The build stage itself (its layers are cached by now) neither copies nor compiles the tests.
    await run('docker', ['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${baseImage}`, '--file', 'docker/Dockerfile', '--target', 'build', '--tag', `${image}-build`, context], {
      env: { ...daemon.env, DOCKER_BUILDKIT: '0' },
      timeoutMs: 1_800_000,
    });
    const buildStage = (await docker(['run', '--rm', '--network', 'none', '--entrypoint', 'sh', `${image}-build`, '-c', 'ls /app /app/dist'])).split(/\s+/);
    assert.ok(buildStage.includes('src') && !buildStage.includes('test'), `build stage: ${buildStage.join(' ')}`);
  });

  it('runs as a non-root user on a read-only root file system, reports healthy, and skopeo and docker push and pull through it', async () => {
    const port = await freePort();
    await runRegistry('registry-one', port, 'registry-data');
    const healthyAfterMs = await waitHealthy('registry-one');
    console.log(`HEALTHCHECK healthy ${(healthyAfterMs / 1000).toFixed(0)} s after start`);

    assert.equal(await inspect('registry-one', '{{.Config.User}}'), 'node');
    assert.equal((await docker(['exec', 'registry-one', 'id', '-u'])).trim(), '1000');
    assert.equal(await inspect('registry-one', '{{.HostConfig.ReadonlyRootfs}}'), 'true');
    await assert.rejects(docker(['exec', 'registry-one', 'touch', '/app/written']), /Read-only file system/);

    const host = `127.0.0.1:${port}`;
    const page = await fetch(`http://${host}/ui/`);
    assert.equal(page.status, 200, 'the container serves the web UI');
    assert.match(await page.text(), /<script type="module" src="app.js">/);
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layoutDirectory}:v1`, `docker://${host}/team/app:v1`]);
    await docker(['pull', `${host}/team/app:v1`]);
    assert.equal(await inspect(`${host}/team/app:v1`, '{{.Id}}'), layoutImage.config.digest, 'docker pulled the image skopeo pushed');

    await docker(['tag', `${host}/team/app:v1`, `${host}/team/app:v2`]);
    const pushed = await docker(['push', `${host}/team/app:v2`]);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed)?.[1];
    assert.ok(digest, pushed);
    const inspected = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/team/app:v2`])).stdout) as { Digest: string };
    assert.equal(inspected.Digest, digest, 'skopeo reads the manifest docker pushed');
    const pulledLayout = path.join(directory, 'pulled');
    await run('skopeo', ['copy', '--src-tls-verify=false', '--preserve-digests', `docker://${host}/team/app:v2`, `oci:${pulledLayout}:v2`]);
    const index = JSON.parse(await readFile(path.join(pulledLayout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]?.digest, digest, 'skopeo pulled the image docker pushed, byte for byte');
    await docker(['rmi', `${host}/team/app:v1`, `${host}/team/app:v2`]);
  });

  it('docker stop ends it within the drain timeout; the next container finds the data on the volume and, with auth on, is still healthy', async () => {
    const started = Date.now();
    await docker(['stop', 'registry-one']);
    const stopSeconds = (Date.now() - started) / 1000;
    console.log(`docker stop took ${stopSeconds.toFixed(1)} s (drain timeout ${drainTimeoutSeconds} s)`);
    assert.ok(stopSeconds < drainTimeoutSeconds, `docker stop took ${stopSeconds} s`);
    assert.equal(await inspect('registry-one', '{{.State.ExitCode}}'), '0', 'the server exited by itself, not killed');
    assert.match((await run('docker', ['logs', 'registry-one'], { env: daemon.env })).stdout, /"registry stopped"/);

    // Auth on: GET /v2/ answers 401, so only a probe of /readyz keeps the container healthy.
    const htpasswd = path.join(directory, 'htpasswd');
    await run('htpasswd', ['-B', '-b', '-c', htpasswd, 'alice', 'alice-password']);
    const port = await freePort();
    await runRegistry('registry-two', port, 'registry-data', [
      '--env', 'REGISTRY_AUTH_MODE=htpasswd',
      '--env', 'REGISTRY_AUTH_HTPASSWD_PATH=/etc/registry/htpasswd',
      '--volume', `${htpasswd}:/etc/registry/htpasswd:ro`,
    ]);
    await waitHealthy('registry-two');
    const host = `127.0.0.1:${port}`;
    assert.equal((await fetch(`http://${host}/v2/`)).status, 401);

    await docker(['login', '--username', 'alice', '--password-stdin', host], 'alice-password');
    await docker(['pull', `${host}/team/app:v2`]);
    assert.equal(await inspect(`${host}/team/app:v2`, '{{.Id}}'), layoutImage.config.digest, 'the image pushed to the first container came back from the volume');
    await docker(['stop', 'registry-two']);
    assert.equal(await inspect('registry-two', '{{.State.ExitCode}}'), '0');
  });
});

/** `docker compose` where the plugin is installed, else docker-compose, else undefined. */
function composeCommand(): string[] | undefined {
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0) return ['docker-compose'];
  return undefined;
}

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  read_only?: boolean;
  stop_grace_period?: string;
  volumes?: Array<string | { target: string }>;
}

describe('docker/compose.yaml: the registry with MinIO and PostgreSQL', { skip: composeCommand() ? undefined : 'neither docker compose nor docker-compose is installed' }, () => {
  const composeFile = path.join(projectRoot, 'docker/compose.yaml');
  const passwords = { POSTGRES_PASSWORD: 'postgres-secret', MINIO_ROOT_PASSWORD: 'minio-secret' };
  const config = async (env: Record<string, string>) => {
    const [command = '', ...args] = composeCommand()!;
    return run(command, [...args, '--file', composeFile, 'config'], { env, timeoutMs: 60_000 });
  };

  it('is valid; the registry starts after PostgreSQL and MinIO are healthy and the bucket exists, and has its own health check', async () => {
    const { services } = parseYaml((await config(passwords)).stdout) as { services: Record<string, ComposeService> };
    assert.deepEqual(Object.keys(services).sort(), ['minio', 'minio-bucket', 'postgres', 'registry']);
    const registry = services.registry!;
    assert.deepEqual(registry.depends_on, {
      postgres: { condition: 'service_healthy' },
      minio: { condition: 'service_healthy' },
      'minio-bucket': { condition: 'service_completed_successfully' },
    });
    assert.ok(services.postgres?.healthcheck && services.minio?.healthcheck, 'the services it waits for have health checks');
    assert.deepEqual(registry.healthcheck?.test, ['CMD', 'node', 'dist/src/healthcheck.js']);
    assert.equal(registry.build?.dockerfile, 'docker/Dockerfile');
    assert.equal(path.resolve(registry.build?.context ?? ''), projectRoot);
    assert.equal(registry.read_only, true);
    assert.ok(Number(/^(\d+)s$/.exec(registry.stop_grace_period ?? '')?.[1]) > drainTimeoutSeconds, 'docker stops it only after the drain timeout');
  });

  it('refuses to start without the passwords instead of running with empty ones', async () => {
    await assert.rejects(config({ MINIO_ROOT_PASSWORD: passwords.MINIO_ROOT_PASSWORD }), /POSTGRES_PASSWORD/);
    await assert.rejects(config({ POSTGRES_PASSWORD: passwords.POSTGRES_PASSWORD }), /MINIO_ROOT_PASSWORD/);
  });

  it('gives the registry an environment that sets the keys it means: every REGISTRY_* variable changes the configuration', async () => {
    const { services } = parseYaml((await config(passwords)).stdout) as { services: Record<string, ComposeService> };
    const { REGISTRY_CONFIG: file, ...variables } = services.registry?.environment ?? {};
    assert.equal(file, 'config/s3-postgres.yaml');
    const load = (env: Record<string, string>) => loadConfig({ file: path.join(projectRoot, file), env, cwd: '/app' }).config;
    const resolved = load(variables);
    assert.equal(resolved.storage.s3.regionendpoint, 'http://minio:9000');
    assert.equal(resolved.storage.s3.bucket, 'registry', 'the bucket minio-bucket creates');
    assert.equal(resolved.storage.s3.secretkey, passwords.MINIO_ROOT_PASSWORD);
    assert.equal(resolved.database.url, `postgres://registry:${passwords.POSTGRES_PASSWORD}@postgres:5432/registry`);
    for (const name of Object.keys(variables)) {
      const { [name]: _left, ...others } = variables;
      let without: unknown;
      try {
        without = load(others);
      } catch (error) {
        without = error; // the variable is needed: without it the configuration is refused
      }
      assert.notDeepEqual(without, resolved, `${name} sets no key (a misspelt variable is ignored)`);
    }
  });
});
