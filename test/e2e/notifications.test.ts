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
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
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
