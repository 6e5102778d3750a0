import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { imageManifest, ociManifestType, type TestManifest } from '../helpers/images.js';
import { OciLayout } from '../helpers/oci-layout.js';
import { freePort } from '../helpers/ports.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { rawRequest } from '../helpers/raw-http.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const endpointsFor = (url: string) => JSON.stringify([{ name: 'ci', url, timeout: '2s', threshold: 3, backoff: '100ms' }]);

async function pushRaw(port: number, repository: string, tag: string, manifest: TestManifest): Promise<void> {
  for (const blob of manifest.blobs) {
    const response = await rawRequest(port, 'POST', `/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, { headers: { 'Content-Length': String(blob.bytes.length) }, body: blob.bytes });
    assert.equal(response.status, 201);
  }
  const response = await rawRequest(port, 'PUT', `/v2/${repository}/manifests/${tag}`, { headers: { 'Content-Type': ociManifestType, 'Content-Length': String(manifest.bytes.length) }, body: manifest.bytes });
  assert.equal(response.status, 201, response.body.toString());
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A CI system's webhook receiver that is down, then failing, then well, while the registry restarts. */
describe('webhooks that are never lost: a receiver down, then failing, then well, across a registry restart', { skip: missingClients('skopeo') }, () => {
  let directory: string;
  let server: ServerProcess | undefined;
  let receiver: WebhookReceiver | undefined;
  let layout: OciLayout;
  let receiverPort: number;
  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-webhooks-'));
    layout = new OciLayout(path.join(directory, 'layout'));
    for (const name of ['one', 'two', 'three', 'four']) await layout.tag(await layout.addImage({ layers: [{ files: [{ name: `${name}.txt`, size: 2000 }] }] }), name);
    receiverPort = await freePort();
  });
  after(async () => {
    await server?.stop();
    await receiver?.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('every event arrives exactly once, in order', async () => {
    const start = () => startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_NOTIFICATIONS_ENDPOINTS: endpointsFor(`http://127.0.0.1:${receiverPort}/events`) } });
    const skopeo = (image: string, tag: string, port: number) =>
      run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.directory}:${image}`, `docker://127.0.0.1:${port}/team/app:${tag}`], { timeoutMs: 120_000 });
    server = await start();
    // The receiver is down: nothing listens on its port.
    await skopeo('one', 'build-1', server.port);
    await skopeo('two', 'build-2', server.port);
    await sleep(800);
    // It comes up answering 500.
    receiver = await startWebhookReceiver(receiverPort);
    receiver.answer(500);
    await skopeo('three', 'build-3', server.port);
    await sleep(800);
    assert.equal(receiver.accepted.length, 0);
    assert.ok(receiver.all.length >= 1, 'the registry kept trying');
    // The registry restarts with three events undelivered.
    assert.equal(await server.stop(), 0);
    server = await start();
    await skopeo('four', 'build-4', server.port);
    receiver.answer(200);
    await receiver.waitFor(4, 30_000);
    await sleep(500);
    const events = receiver.accepted.flatMap((request) => request.events);
    assert.deepEqual(events.map((event) => [event.action, event.target.tag]), [
      ['push', 'build-1'],
      ['push', 'build-2'],
      ['push', 'build-3'],
      ['push', 'build-4'],
    ]);
    assert.equal(new Set(events.map((event) => event.id)).size, 4, 'each once');
    const status = JSON.parse((await rawRequest(server.port, 'GET', '/api/v1/notifications/status')).body.toString()) as { endpoints: Array<{ delivered: number; pending: number; failed: number; failing: boolean }> };
    assert.equal(status.endpoints[0]!.delivered, 4);
    assert.equal(status.endpoints[0]!.pending, 0);
    assert.ok(status.endpoints[0]!.failed >= 2);
    assert.equal(status.endpoints[0]!.failing, false);
  });
});

const postgresSkip = await postgresSkipReason();

describe('webhooks with two replicas on one PostgreSQL database', { skip: postgresSkip }, () => {
  let directory: string;
  let replicas: ServerProcess[] = [];
  let receiver: WebhookReceiver;
  let drop: (() => Promise<void>) | undefined;
  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-webhooks-replicas-'));
    receiver = await startWebhookReceiver();
    const database = await createTestDatabase();
    drop = database.drop;
    const env = { REGISTRY_DATABASE_URL: database.url, REGISTRY_NOTIFICATIONS_ENDPOINTS: endpointsFor(receiver.url) };
    replicas = await Promise.all([0, 1].map((index) => startServerProcess({ root: path.join(directory, 'storage'), env: { ...env, REGISTRY_AUDIT_INSTANCE: `replica-${index}` } })));
  });
  after(async () => {
    for (const replica of replicas) await replica.stop();
    await receiver?.close();
    await drop?.();
    await rm(directory, { recursive: true, force: true });
  });

  it('deliver each event once, in the order the pushes committed', async () => {
    const manifests = Array.from({ length: 12 }, () => imageManifest({ layerSize: 64 }));
    await Promise.all(manifests.map((manifest, index) => pushRaw(replicas[index % 2]!.port, 'shared/app', `t${index}`, manifest)));
    await receiver.waitFor(12, 30_000);
    await sleep(1000);
    const events = receiver.accepted.flatMap((request) => request.events);
    assert.equal(events.length, 12, 'no event twice');
    assert.deepEqual(new Set(events.map((event) => event.target.tag)), new Set(manifests.map((_, index) => `t${index}`)));
    const auditIds = events.map((event) => event.audit as number);
    assert.deepEqual(auditIds, [...auditIds].sort((a, b) => a - b), 'in commit order');
    assert.equal(new Set(events.map((event) => (event.source as { instanceID: string }).instanceID)).size, 2, 'pushed through both replicas');
  });
});

/**
 * Every writer of tags notifies as the server does: the command line's retention run and import
 * (the composition root builds their services with the webhook outbox), next to HTTP pushes and the
 * HTTP retention run. The server beside them delivers what they wrote.
 */
describe('every writer of tags sends webhooks: pushes, retention runs (HTTP and command line), imports', { skip: missingClients('skopeo') }, () => {
  let directory: string;
  let server: ServerProcess | undefined;
  let receiver: WebhookReceiver;
  let env: Record<string, string>;
  let layout: OciLayout;
  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-writers-'));
    receiver = await startWebhookReceiver();
    layout = new OciLayout(path.join(directory, 'layout'));
    for (const name of ['one', 'two', 'three']) await layout.tag(await layout.addImage({ layers: [{ files: [{ name: `${name}.txt`, size: 1500 }] }] }), name);
    env = {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage'),
      REGISTRY_NOTIFICATIONS_ENDPOINTS: endpointsFor(receiver.url),
      REGISTRY_RETENTION_POLICIES: JSON.stringify([{ repositories: ['cli/**', 'http/**'], keep: { mostRecent: 1 } }]),
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    };
    server = await startServerProcess({ root: env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY!, env });
  });
  after(async () => {
    await server?.stop();
    await receiver?.close();
    await rm(directory, { recursive: true, force: true });
  });

  const deliveredTags = (action: string, repository: string) =>
    receiver.accepted
      .flatMap((request) => request.events)
      .filter((event) => event.action === action && event.target.repository === repository && event.target.tag !== undefined)
      .map((event) => event.target.tag as string)
      .sort();
  const waitFor = async (what: () => boolean, label: string) => {
    for (const deadline = Date.now() + 20_000; !what(); ) {
      if (Date.now() > deadline) throw new Error(`not delivered: ${label}: ${JSON.stringify(receiver.accepted.flatMap((request) => request.events).map((event) => [event.action, event.target.repository, event.target.tag]))}`);
      await sleep(100);
    }
  };

  it('a retention run from the command line and one over HTTP each notify the tags they delete; an import from the command line notifies what it tags', async () => {
    const host = `127.0.0.1:${server!.port}`;
    for (const repository of ['cli/app', 'http/app']) {
      for (const name of ['one', 'two', 'three']) {
        await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.directory}:${name}`, `docker://${host}/${repository}:${name}`], { timeoutMs: 120_000 });
        await sleep(5);
      }
    }
    await waitFor(() => deliveredTags('push', 'cli/app').length === 3 && deliveredTags('push', 'http/app').length === 3, 'the six pushes');

    const cli = await runRegistryCommand(['retention', 'run'], env);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /deleted 4 tags in 2 repositories/);
    await waitFor(() => deliveredTags('delete', 'cli/app').length === 2, 'the command line run\'s deletes');
    assert.deepEqual(deliveredTags('delete', 'cli/app'), ['one', 'two']);

    await skopeo2(host, 'http/app', ['one', 'two']);
    const overHttp = await rawRequest(server!.port, 'POST', '/api/v1/retention?dryrun=false');
    assert.equal(overHttp.status, 200, overHttp.body.toString());
    await waitFor(() => deliveredTags('delete', 'http/app').length === 4, 'the HTTP run\'s deletes');

    // Carried out and back in: the tag is deleted over HTTP, then the import creates it again.
    const bundle = path.join(directory, 'bundle.tar');
    const exported = await runRegistryCommand(['export', '--out', bundle, 'cli/app:three'], env);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal((await rawRequest(server!.port, 'DELETE', '/v2/cli/app/manifests/three')).status, 202);
    await waitFor(() => deliveredTags('delete', 'cli/app').length === 3, 'the HTTP delete');
    const imported = await runRegistryCommand(['import', bundle, '--as-local'], env);
    assert.equal(imported.code, 0, imported.stderr);
    await waitFor(() => deliveredTags('push', 'cli/app').filter((tag) => tag === 'three').length === 2, 'the import\'s tag');

    const actors = ((await rawRequest(server!.port, 'GET', '/api/v1/audit/events?action=deleted')).json() as { events: Array<{ repository: string; actor: string }> }).events;
    assert.deepEqual([...new Set(actors.map((event) => `${event.repository} ${event.actor}`))].sort(), ['cli/app anonymous', 'cli/app retention.policies[0]', 'http/app retention.policies[0]']);
  });

  /** Pushes the tags again (retention kept only the newest), so the HTTP run has something to delete. */
  async function skopeo2(host: string, repository: string, names: string[]): Promise<void> {
    for (const name of names) await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.directory}:${name}`, `docker://${host}/${repository}:${name}`], { timeoutMs: 120_000 });
  }
});
