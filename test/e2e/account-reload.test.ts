import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { OciLayout } from '../helpers/oci-layout.js';
import { basic } from '../helpers/auth.js';
import { rawRequest } from '../helpers/raw-http.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const hash = (secret: string) => bcrypt.hashSync(secret, 4);

async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const logged = (server: ServerProcess, message: string, extra: (entry: Record<string, unknown>) => boolean = () => true) =>
  server.logs.filter((entry) => String(entry.msg).startsWith(message) && extra(entry)).length;

describe('the access policy and htpasswd file are reloaded while the registry runs', { skip: missingClients('skopeo') }, () => {
  let directory: string;
  let policyFile: string;
  let htpasswdFile: string;
  let server: ServerProcess;
  let layout: OciLayout;
  const alice = hash('alice-password');

  /** The operator's policy: alice may push team/**; with a robot, the robot may push deploy/**. */
  const writePolicy = (robot?: { name: string; hash: string }) =>
    writeFile(
      policyFile,
      [
        'users:',
        `  alice: { password: "${alice}" }`,
        ...(robot ? ['robots:', `  ${robot.name}: { secret: "${robot.hash}" }`] : []),
        'rules:',
        '  - { accounts: [alice], repositories: ["team/**"], actions: [pull, push] }',
        ...(robot ? [`  - { robots: [${robot.name}], repositories: ["deploy/**"], actions: [pull, push] }`] : []),
        '',
      ].join('\n'),
    );

  const tokenStatus = async (user: string, password: string) =>
    (await rawRequest(server.port, 'GET', '/auth/token?service=registry&scope=repository:deploy/app:pull,push', { headers: { Authorization: basic(user, password) } })).status;

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-reload-'));
    policyFile = path.join(directory, 'policy.yaml');
    htpasswdFile = path.join(directory, 'htpasswd');
    await writePolicy();
    await writeFile(htpasswdFile, `carol:${hash('carol-password')}\n`);
    layout = new OciLayout(path.join(directory, 'layout'));
    await layout.tag(await layout.addImage({ layers: [{ files: [{ name: 'app.txt', size: 2000 }] }] }), 'v1');
    server = await startServerProcess({
      root: path.join(directory, 'storage'),
      env: { REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: policyFile, REGISTRY_AUTH_HTPASSWD_PATH: htpasswdFile },
    });
  });
  after(async () => {
    await server?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('the start-up line names the policy, the htpasswd file and the generated token signing key', () => {
    const listening = server.logs.find((entry) => entry.msg === 'registry listening');
    assert.equal(listening?.policyFile, policyFile);
    assert.equal(listening?.htpasswdFile, htpasswdFile);
    const keyFile = path.join(directory, 'storage', 'auth', 'token-signing-key.pem');
    assert.equal(listening?.tokenSigningKey, keyFile);
    assert.equal(listening?.tokenSigningKeyGenerated, true);
    assert.equal(listening?.grants, 'the rules of auth.policy', 'the mode of access in force');
    assert.equal(listening?.databaseAccounts, 0);
    assert.equal(listening?.systemAdmins, 0);
    assert.ok(existsSync(keyFile), 'the key is where the line says');
  });

  it('a robot added to the policy while the registry runs pushes with skopeo seconds later, without a restart', async () => {
    const created = await runRegistryCommand(['auth', 'robot', 'deploy'], {});
    const secret = /^secret:\s+(\S+)$/m.exec(created.stdout)?.[1];
    const robotHash = /secret: "([^"]+)"/.exec(created.stdout)?.[1];
    assert.ok(secret && robotHash, created.stdout);
    const push = () =>
      run('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `robot$deploy:${secret}`, `oci:${layout.directory}:v1`, `docker://127.0.0.1:${server.port}/deploy/app:v1`]);
    await assert.rejects(push(), /unauthorized|authentication required|401/i, 'unknown before the policy names it');

    await writePolicy({ name: 'deploy', hash: robotHash });
    await eventually('the changed policy is read', () => logged(server, 'accounts reloaded', (entry) => entry.reason === 'file changed') > 0);
    await push();
    assert.equal((await rawRequest(server.port, 'HEAD', '/v2/deploy/app/manifests/v1')).status, 401, 'still behind auth');
    assert.equal(await tokenStatus('robot$deploy', secret), 200);
  });

  it('a policy that does not parse leaves the accounts in force, and the log says why; SIGHUP reads the fixed one', async () => {
    const created = await runRegistryCommand(['auth', 'robot', 'deploy'], {});
    const secret = /^secret:\s+(\S+)$/m.exec(created.stdout)?.[1]!;
    const robotHash = /secret: "([^"]+)"/.exec(created.stdout)?.[1]!;
    await writePolicy({ name: 'deploy', hash: robotHash });
    await eventually('the new robot secret is read', async () => (await tokenStatus('robot$deploy', secret)) === 200);

    const failuresBefore = logged(server, 'accounts not reloaded');
    await writeFile(policyFile, 'rules:\n  - { accounts: [alice], repositories: ["team/**"], actions: [pull, push\n');
    await eventually('the broken policy is reported', () => logged(server, 'accounts not reloaded') > failuresBefore);
    const failure = server.logs.filter((entry) => String(entry.msg).startsWith('accounts not reloaded')).at(-1)!;
    assert.equal(failure.policyFile, policyFile);
    assert.match(String(failure.problem), /access policy .*policy\.yaml/);
    assert.equal(failure.level, 'error', 'an error line');
    assert.equal(await tokenStatus('robot$deploy', secret), 200, 'the robot still logs in with the policy in force');
    assert.equal(await tokenStatus('alice', 'alice-password'), 200);

    // The operator fixes the policy (without the robot) and sends SIGHUP, as after any edit.
    const reloadsBefore = logged(server, 'accounts reloaded', (entry) => entry.reason === 'SIGHUP');
    await writePolicy();
    server.child.kill('SIGHUP');
    await eventually('SIGHUP reloads the accounts', () => logged(server, 'accounts reloaded', (entry) => entry.reason === 'SIGHUP') > reloadsBefore);
    assert.equal(await tokenStatus('robot$deploy', secret), 401, 'the robot is gone');
    assert.equal(await tokenStatus('alice', 'alice-password'), 200);
  });

  it('a user removed from the htpasswd file cannot log in any more, even right after a login', async () => {
    assert.equal(await tokenStatus('carol', 'carol-password'), 200);
    await writeFile(htpasswdFile, `dave:${hash('dave-password')}\n`);
    await eventually('carol is refused', async () => (await tokenStatus('carol', 'carol-password')) === 401);
    assert.equal(await tokenStatus('dave', 'dave-password'), 200);
  });
});

describe('HTTP Basic (auth.mode htpasswd): proven credentials are not trusted past a reload', () => {
  it('carol, just logged in, is refused once the htpasswd file no longer has her', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'registry-reload-basic-'));
    const htpasswdFile = path.join(directory, 'htpasswd');
    await writeFile(htpasswdFile, `carol:${hash('carol-password')}\n`);
    const server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_AUTH_MODE: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: htpasswdFile } });
    try {
      const status = async () => (await rawRequest(server.port, 'GET', '/v2/', { headers: { Authorization: basic('carol', 'carol-password') } })).status;
      assert.equal(await status(), 200);
      await writeFile(htpasswdFile, '# nobody\n');
      server.child.kill('SIGHUP');
      await eventually('the reload', () => logged(server, 'accounts reloaded') > 0);
      assert.equal(await status(), 401, 'remembered credentials are checked again against the new file');
    } finally {
      await server.stop();
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('auth off on an address beyond this machine', () => {
  it('logs one warning saying anyone who can reach the port can push and delete; none on loopback', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'registry-open-'));
    try {
      const open = await startServerProcess({ root: path.join(directory, 'a'), env: { REGISTRY_HTTP_ADDR: ':0' } });
      await open.stop();
      const warnings = open.logs.filter((entry) => entry.level === 'warn' && /anyone who can reach the port can push/.test(String(entry.msg)));
      assert.equal(warnings.length, 1, JSON.stringify(open.logs.map((entry) => entry.msg)));
      const local = await startServerProcess({ root: path.join(directory, 'b') });
      await local.stop();
      assert.ok(!local.logs.some((entry) => entry.level === 'warn'), 'no warning on 127.0.0.1');
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
