import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basic, claimsOf, passwords, writeTestPolicy } from '../helpers/auth.js';
import { startDockerDaemon, type DockerDaemon } from '../helpers/docker-daemon.js';
import { OciLayout } from '../helpers/oci-layout.js';
import { rawRequest } from '../helpers/raw-http.js';
import { projectRoot, runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const skip = missingClients('skopeo', 'htpasswd');

/** Runs a command that should fail; its combined output. */
async function fails(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  try {
    await run(command, args, { timeoutMs: 120_000, ...(env ? { env } : {}) });
  } catch (error) {
    return String((error as Error).message);
  }
  throw new Error(`${command} ${args.join(' ')} succeeded`);
}

describe('token auth with real clients', { skip }, () => {
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  let server: ServerProcess;
  let host: string;
  let layout: OciLayout;
  const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 300_000 });

  before(async () => {
    files = await writeTestPolicy();
    // carol's entry as `htpasswd -B` writes it (replacing the one the helper made).
    await run('htpasswd', ['-B', '-b', '-c', files.htpasswd, 'carol', passwords.carol]);
    server = await startServerProcess({
      root: path.join(files.directory, 'storage'),
      env: { REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: files.policy, REGISTRY_AUTH_HTPASSWD_PATH: files.htpasswd },
    });
    host = `127.0.0.1:${server.port}`;
    layout = new OciLayout(path.join(files.directory, 'layout'));
    const image = await layout.addImage({ layers: [{ files: [{ name: 'hello.txt', size: 5000 }] }] });
    await layout.tag(image, 'v1');
    const second = await layout.addImage({ layers: [{ files: [{ name: 'other.txt', size: 3000 }] }] });
    await layout.tag(second, 'v2');
  });
  after(async () => {
    await server?.stop();
    await rm(files.directory, { recursive: true, force: true });
  });

  it('skopeo copy --dest-creds, inspect --creds and delete --creds work within each user\'s rules', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `alice:${passwords.alice}`, `oci:${layout.directory}:v1`, `docker://${host}/team-a/app:v1`);
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `alice:${passwords.alice}`, `oci:${layout.directory}:v2`, `docker://${host}/team-a/app:v2`);
    const inspected = JSON.parse((await skopeo('inspect', '--tls-verify=false', '--creds', `bob:${passwords.bob}`, `docker://${host}/team-a/app:v1`)).stdout) as { Name: string };
    assert.equal(inspected.Name, `${host}/team-a/app`);
    await skopeo('inspect', '--tls-verify=false', '--creds', `carol:${passwords.carol}`, `docker://${host}/team-a/app:v1`);
    assert.match(await fails('skopeo', ['delete', '--tls-verify=false', '--creds', `bob:${passwords.bob}`, `docker://${host}/team-a/app:v2`]), /denied|unauthorized|forbidden/i);
    await skopeo('delete', '--tls-verify=false', '--creds', `alice:${passwords.alice}`, `docker://${host}/team-a/app:v2`);
    const tags = JSON.parse((await skopeo('list-tags', '--tls-verify=false', '--creds', `alice:${passwords.alice}`, `docker://${host}/team-a/app`)).stdout) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['v1']);
  });

  it('the first system admin, made on the command line while the server runs, pushes where no rule reaches', async () => {
    const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(files.directory, 'storage'), REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: files.policy };
    const created = await runRegistryCommand(['accounts', 'create', 'root', '--admin', '--password-stdin'], env, undefined, 'root-password-1\n');
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created system admin root/);
    const again = await runRegistryCommand(['accounts', 'create', 'root', '--password-stdin'], env, undefined, 'other-password-1\n');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /account root exists already/);
    const missing = await runRegistryCommand(['accounts', 'create', 'eve'], env);
    assert.notEqual(missing.code, 0, 'without --password-stdin nothing is created');
    const listed = JSON.parse((await runRegistryCommand(['accounts', 'list', '--json'], env)).stdout) as { accounts: Array<{ name: string; admin: boolean }> };
    assert.deepEqual(listed.accounts.map((account) => [account.name, account.admin]), [['root', true]]);
    // The server reads the accounts again within a second of the change.
    for (const deadline = Date.now() + 5_000; ; ) {
      const probe = await fetch(`http://${host}/auth/token?service=registry`, { headers: { Authorization: `Basic ${Buffer.from('root:root-password-1').toString('base64')}` } });
      if (probe.status === 200) break;
      assert.ok(Date.now() < deadline, `the server did not take the new account (${probe.status})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', 'root:root-password-1', `oci:${layout.directory}:v1`, `docker://${host}/nobody-else/app:v1`);
    await skopeo('inspect', '--tls-verify=false', '--creds', 'root:root-password-1', `docker://${host}/nobody-else/app:v1`);
    assert.match(await fails('skopeo', ['inspect', '--tls-verify=false', '--creds', `alice:${passwords.alice}`, `docker://${host}/nobody-else/app:v1`]), /denied|unauthorized|forbidden/i);

    // The admin makes a project and a robot for CI over the API; skopeo signs in as robot$ci+builder.
    const tokenReply = await fetch(`http://${host}/auth/token?service=registry&scope=${encodeURIComponent('registry:admin:*')}`, { headers: { Authorization: `Basic ${Buffer.from('root:root-password-1').toString('base64')}` } });
    const admin = { Authorization: `Bearer ${((await tokenReply.json()) as { token: string }).token}`, 'Content-Type': 'application/json' };
    assert.equal((await fetch(`http://${host}/api/v1/projects`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'ci' }) })).status, 201);
    const robotReply = await fetch(`http://${host}/api/v1/projects/ci/robots`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'builder', access: [{ repositories: ['app'], actions: ['pull', 'push'] }], expiresIn: '30d' }) });
    assert.equal(robotReply.status, 201);
    const robot = (await robotReply.json()) as { name: string; secret: string };
    assert.equal(robot.name, 'robot$ci+builder');
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `${robot.name}:${robot.secret}`, `oci:${layout.directory}:v1`, `docker://${host}/ci/app:v1`);
    await skopeo('inspect', '--tls-verify=false', '--creds', `${robot.name}:${robot.secret}`, `docker://${host}/ci/app:v1`);
    assert.match(await fails('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `${robot.name}:${robot.secret}`, `oci:${layout.directory}:v1`, `docker://${host}/ci/other:v1`]), /denied|unauthorized|forbidden/i);
  });

  it('a user limited to team-a/** cannot push to team-b/x; a pull-only user cannot push at all', async () => {
    assert.match(
      await fails('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${passwords.alice}`, `oci:${layout.directory}:v1`, `docker://${host}/team-b/x:v1`]),
      /denied|unauthorized|forbidden/i,
    );
    assert.match(
      await fails('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `bob:${passwords.bob}`, `oci:${layout.directory}:v1`, `docker://${host}/team-a/bob:v1`]),
      /denied|unauthorized|forbidden/i,
    );
    assert.match(await fails('skopeo', ['inspect', '--tls-verify=false', '--creds', 'alice:wrong', `docker://${host}/team-a/app:v1`]), /unauthorized|authentication/i);
  });

  it('a robot account pushes with its secret', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `robot$ci:${passwords.robot}`, `oci:${layout.directory}:v1`, `docker://${host}/team-b/build:v1`);
    await skopeo('inspect', '--tls-verify=false', '--creds', `robot$ci:${passwords.robot}`, `docker://${host}/team-b/build:v1`);
  });

  it('anonymous pulls are allowed or refused per rule', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `alice:${passwords.alice}`, `oci:${layout.directory}:v1`, `docker://${host}/public/tools:v1`);
    await skopeo('inspect', '--tls-verify=false', '--no-creds', `docker://${host}/public/tools:v1`);
    assert.match(await fails('skopeo', ['inspect', '--tls-verify=false', '--no-creds', `docker://${host}/team-a/app:v1`]), /denied|unauthorized|forbidden|authentication/i);
  });

  describe('docker login, push, pull and logout on a private daemon', { skip: missingClients('dockerd', 'docker') }, () => {
    let daemon: DockerDaemon;
    before(async () => {
      daemon = await startDockerDaemon(path.join(files.directory, 'docker'));
      await run('skopeo', ['copy', '--dest-daemon-host', `unix://${daemon.socket}`, `oci:${layout.directory}:v1`, 'docker-daemon:e2e/local:v1']);
    });
    after(async () => daemon?.stop());

    it('logs in (wrong password refused), pushes and pulls, and is refused again after logout', async () => {
      const config = path.join(files.directory, 'docker-config');
      const env = { ...daemon.env, DOCKER_CONFIG: config };
      const docker = (args: string[], input?: string) => run('docker', args, { env, timeoutMs: 300_000, ...(input !== undefined ? { input } : {}) });
      assert.match(await fails('docker', ['login', '-u', 'alice', '-p', 'wrong', host], env), /unauthorized|incorrect|denied/i);
      const login = await docker(['login', '-u', 'alice', '--password-stdin', host], passwords.alice);
      assert.match(login.stdout, /Login Succeeded/);
      await docker(['tag', 'e2e/local:v1', `${host}/team-a/docker:v1`]);
      await docker(['push', `${host}/team-a/docker:v1`]);
      await docker(['rmi', `${host}/team-a/docker:v1`]);
      await docker(['pull', `${host}/team-a/docker:v1`]);
      await docker(['logout', host]);
      await docker(['rmi', `${host}/team-a/docker:v1`]);
      assert.match(await fails('docker', ['pull', `${host}/team-a/docker:v1`], env), /denied|unauthorized|forbidden|authentication/i);
      const users = server.logs.filter((entry) => entry.msg === 'request' && entry.route === 'manifest.put').map((entry) => entry.user);
      assert.ok(users.includes('alice'), 'the request log names the user');
    });
  });
});

describe('registry auth robot / auth hash', () => {
  it('creates a robot whose secret and policy entry work against a started registry; hashes a password', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'registry-robot-'));
    try {
      const created = await runRegistryCommand(['auth', 'robot', 'deployer'], {});
      assert.equal(created.code, 0, created.stderr);
      const secret = /^secret:\s+(\S+)$/m.exec(created.stdout)?.[1];
      const entry = created.stdout.slice(created.stdout.indexOf('robots:'));
      assert.ok(secret && secret.length >= 40, 'a long random secret');
      const hashed = await run(process.execPath, [path.join(projectRoot, 'dist/src/main.js'), 'auth', 'hash'], { input: 'user-password\n' });
      const userHash = hashed.stdout.trim();
      assert.match(userHash, /^\$2[aby]\$10\$/);
      const policy = path.join(directory, 'policy.yaml');
      await writeFile(policy, `${entry}users:\n  dora: { password: "${userHash}" }\nrules:\n  - { robots: [deployer], repositories: ["deploy/**"], actions: [pull, push] }\n  - { accounts: [dora], repositories: ["**"], actions: [pull] }\n`);
      const server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: policy } });
      try {
        const ask = async (user: string, password: string) => {
          const response = await rawRequest(server.port, 'GET', '/auth/token?service=registry&scope=repository:deploy/app:pull,push', { headers: { Authorization: basic(user, password) } });
          return { status: response.status, access: response.status === 200 ? claimsOf((response.json() as { token: string }).token).access : null };
        };
        assert.deepEqual(await ask('robot$deployer', secret!), { status: 200, access: [{ type: 'repository', name: 'deploy/app', actions: ['pull', 'push'] }] });
        assert.deepEqual(await ask('dora', 'user-password'), { status: 200, access: [{ type: 'repository', name: 'deploy/app', actions: ['pull'] }] });
        assert.equal((await ask('robot$deployer', 'not-the-secret')).status, 401);
      } finally {
        await server.stop();
      }
      const bad = await runRegistryCommand(['auth', 'robot', 'Bad Name'], {});
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /a robot name is/);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
