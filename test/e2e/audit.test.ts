import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { startDockerDaemon, type DockerDaemon } from '../helpers/docker-daemon.js';
import { OciLayout } from '../helpers/oci-layout.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const skip = missingClients('skopeo', 'dockerd', 'docker');

interface EventJson {
  id: number;
  tag: string | null;
  action: string;
  from: string | null;
  to: string | null;
  actor: string;
  authMethod: string;
  address: string | null;
  userAgent: string | null;
  restoredEvent: number | null;
}

/**
 * The operator's story: two people push team/api:prod, alice with skopeo and bob with docker, three
 * images in turn; alice deletes it; the operator asks who moved prod from what to what, and puts
 * bob's image back; a client pulls it.
 */
describe('tag audit with real clients: who moved team/api:prod, from which digest to which, and putting it back', { skip }, () => {
  let directory: string;
  let server: ServerProcess;
  let daemon: DockerDaemon;
  let host: string;
  let layout: OciLayout;
  const digests: string[] = [];
  const passwords = { alice: 'alice-audit-password', bob: 'bob-audit-password' };
  const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 300_000 });
  const registryEnv = () => ({ REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage') });
  const prodDigest = async () =>
    (JSON.parse((await skopeo('inspect', '--tls-verify=false', '--creds', `alice:${passwords.alice}`, `docker://${host}/team/api:prod`)).stdout) as { Digest: string }).Digest;
  const token = async (user: 'alice' | 'bob', scopes: string[]) => {
    const query = new URLSearchParams({ service: 'registry' });
    for (const scope of scopes) query.append('scope', scope);
    const response = await fetch(`http://${host}/auth/token?${query.toString()}`, { headers: { Authorization: `Basic ${Buffer.from(`${user}:${passwords[user]}`).toString('base64')}` } });
    assert.equal(response.status, 200);
    return ((await response.json()) as { token: string }).token;
  };

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-audit-e2e-'));
    const policy = path.join(directory, 'policy.yaml');
    const hash = (secret: string) => bcrypt.hashSync(secret, 4);
    await writeFile(
      policy,
      [
        'users:',
        `  alice: { password: "${hash(passwords.alice)}", groups: [operators] }`,
        `  bob: { password: "${hash(passwords.bob)}", groups: [developers] }`,
        'rules:',
        '  - { groups: [operators], repositories: ["team/**"], actions: ["*"] }',
        '  - { groups: [operators], catalog: true, audit: true }',
        '  - { groups: [developers], repositories: ["team/**"], actions: [pull, push] }',
        '',
      ].join('\n'),
    );
    server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: policy } });
    host = `127.0.0.1:${server.port}`;
    layout = new OciLayout(path.join(directory, 'layout'));
    for (const [index, name] of ['one', 'two', 'three'].entries()) {
      const image = await layout.addImage({ layers: [{ files: [{ name: `${name}.txt`, size: 4000 + index * 1000 }] }] });
      await layout.tag(image, name);
    }
    daemon = await startDockerDaemon(path.join(directory, 'docker'));
    await skopeo('copy', '--dest-daemon-host', `unix://${daemon.socket}`, `oci:${layout.directory}:two`, 'docker-daemon:local/api:two');
  });
  after(async () => {
    await daemon?.stop();
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('alice (skopeo) and bob (docker) push prod three times, alice deletes it', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `alice:${passwords.alice}`, `oci:${layout.directory}:one`, `docker://${host}/team/api:prod`);
    digests.push(await prodDigest());

    const env = { ...daemon.env, DOCKER_CONFIG: path.join(directory, 'docker-config') };
    const docker = (args: string[], input?: string) => run('docker', args, { env, timeoutMs: 300_000, ...(input !== undefined ? { input } : {}) });
    await docker(['login', '-u', 'bob', '--password-stdin', host], passwords.bob);
    await docker(['tag', 'local/api:two', `${host}/team/api:prod`]);
    await docker(['push', `${host}/team/api:prod`]);
    digests.push(await prodDigest());

    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `alice:${passwords.alice}`, `oci:${layout.directory}:three`, `docker://${host}/team/api:prod`);
    digests.push(await prodDigest());
    assert.equal(new Set(digests).size, 3, 'three different images');

    // skopeo deletes by digest: the manifest goes, and prod with it.
    await skopeo('delete', '--tls-verify=false', '--creds', `alice:${passwords.alice}`, `docker://${host}/team/api:prod`);
  });

  it('the operator restores bob\'s image over HTTP, and skopeo pulls exactly it', async () => {
    const auth = await token('alice', ['repository:team/api:pull,push', 'registry:audit:*']);
    const history = await fetch(`http://${host}/api/v1/audit/events?repository=team/api&tag=prod&action=moved`, { headers: { Authorization: `Bearer ${auth}` } });
    const [bobsMove] = ((await history.json()) as { events: EventJson[] }).events.filter((event) => event.actor === 'bob');
    assert.ok(bobsMove, 'bob moved prod');
    const restored = await fetch(`http://${host}/api/v1/repositories/team/api/tags/prod/restore`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${auth}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ event: bobsMove.id }),
    });
    assert.equal(restored.status, 200, await restored.clone().text());
    assert.equal(((await restored.json()) as { to: string }).to, digests[1]);

    assert.equal(await prodDigest(), digests[1]);
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', `bob:${passwords.bob}`, `docker://${host}/team/api:prod`, `dir:${path.join(directory, 'pulled')}`);
    const pulledManifest = await run('sha256sum', [path.join(directory, 'pulled', 'manifest.json')]);
    assert.equal(`sha256:${pulledManifest.stdout.split(' ')[0]}`, digests[1], 'the restored digest, byte for byte');
  });

  it('the HTTP API shows the five events with both digests, the users, how they signed in and from where', async () => {
    const auth = await token('alice', ['registry:audit:*']);
    const response = await fetch(`http://${host}/api/v1/audit/events?repository=team/api&tag=prod`, { headers: { Authorization: `Bearer ${auth}` } });
    assert.equal(response.status, 200);
    const events = ((await response.json()) as { events: EventJson[] }).events.reverse();
    assert.deepEqual(
      events.map((event) => [event.action, event.from, event.to, event.actor]),
      [
        ['created', null, digests[0], 'alice'],
        ['moved', digests[0], digests[1], 'bob'],
        ['moved', digests[1], digests[2], 'alice'],
        ['deleted', digests[2], null, 'alice'],
        ['restored', null, digests[1], 'alice'],
      ],
    );
    assert.ok(events.every((event) => event.authMethod === 'token' && event.address === '127.0.0.1'), JSON.stringify(events.map((event) => [event.authMethod, event.address])));
    assert.match(events[0]!.userAgent ?? '', /skopeo|containers/i);
    assert.match(events[1]!.userAgent ?? '', /docker/i);
    assert.equal(events[4]!.restoredEvent, events[1]!.id);
    const bobs = await fetch(`http://${host}/api/v1/audit/events`, { headers: { Authorization: `Bearer ${await token('bob', ['registry:audit:*'])}` } });
    assert.ok([401, 403].includes(bobs.status), 'bob has no audit grant');
  });

  it('registry audit history team/api:prod prints each digest, who set it and from where; verify finds the chain whole', async () => {
    const history = await runRegistryCommand(['audit', 'history', 'team/api:prod'], registryEnv());
    assert.equal(history.code, 0, history.stderr);
    for (const digest of digests) assert.ok(history.stdout.includes(digest), `the history names ${digest}`);
    const eventLines = history.stdout.slice(history.stdout.indexOf('\nevents\n')).split('\n').filter((line) => /^\d+\s/.test(line));
    assert.deepEqual(eventLines.map((line) => line.split(/\s+/)[3]), ['restored', 'deleted', 'moved', 'moved', 'created'], history.stdout);
    assert.ok(eventLines.some((line) => /\sbob\s+127\.0\.0\.1$/.test(line)) && eventLines.some((line) => /\salice\s+127\.0\.0\.1$/.test(line)), history.stdout);

    const json = await runRegistryCommand(['audit', 'events', '--repository', 'team/api', '--actor', 'bob', '--json'], registryEnv());
    assert.equal(json.code, 0, json.stderr);
    const bobs = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as EventJson);
    assert.deepEqual(bobs.map((event) => [event.action, event.to]), [['moved', digests[1]]]);

    const verify = await runRegistryCommand(['audit', 'verify'], registryEnv());
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /audit chain intact: 5 events/);

    const out = path.join(directory, 'audit.jsonl');
    const exported = await runRegistryCommand(['audit', 'export', '--since', '2000-01-01T00:00:00Z', '--out', out], registryEnv());
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stderr, /wrote 5 events/);

    const bad = await runRegistryCommand(['audit', 'events', '--since', 'last tuesday'], registryEnv());
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /since: expected an RFC 3339 time/);
  });
});
