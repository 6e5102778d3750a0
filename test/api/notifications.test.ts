import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { allManifestTypes, imageManifest, pushManifest } from '../helpers/images.js';
import { pushBlob } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';
import { mirrorConfigFor, startTestUpstream, type TestUpstream } from '../helpers/upstream.js';

const secret = 'receiver-shared-secret';

async function outboxRows(registry: TestRegistry): Promise<number> {
  return (await registry.metadata.db.selectFrom('notification_outbox').select('id').execute()).length;
}

describe('notifications: Distribution\'s envelope, from an outbox written with the change', () => {
  let registry: TestRegistry;
  let receiver: WebhookReceiver;
  let quiet: WebhookReceiver;
  let off: WebhookReceiver;
  const first = imageManifest();
  const second = imageManifest();
  before(async () => {
    receiver = await startWebhookReceiver();
    quiet = await startWebhookReceiver();
    off = await startWebhookReceiver();
    registry = await createTestRegistry({
      tags: { immutable: [{ repositories: ['prod/**'], tags: ['v*'] }] },
      notifications: {
        endpoints: [
          { name: 'ci', url: receiver.url, headers: { Authorization: ['Bearer ci-token'] }, timeout: '2s', threshold: 3, backoff: '50ms', secret },
          { name: 'pushes-only', url: quiet.url, backoff: '50ms', ignore: { actions: ['delete'], mediatypes: ['application/vnd.docker.distribution.manifest.v2+json'] } },
          { name: 'switched-off', url: off.url, disabled: true },
        ],
      },
    });
  });
  after(async () => {
    await registry?.close();
    await receiver?.close();
    await quiet?.close();
    await off?.close();
  });

  it('a push, a move and a delete arrive in order as Distribution sends them, with the previous digest and the audit event', async () => {
    await pushManifest(registry.request.set('User-Agent', 'docker/27.5.1'), 'team/api', 'prod', first);
    await pushManifest(registry.request, 'team/api', 'prod', second);
    await registry.request.delete('/v2/team/api/manifests/prod').expect(202);
    await receiver.waitFor(3);
    const request = receiver.accepted[0]!;
    assert.equal(request.headers['content-type'], 'application/vnd.docker.distribution.events.v2+json');
    assert.equal(request.headers.authorization, 'Bearer ci-token');
    assert.equal(request.headers['x-registry-signature-256'], `sha256=${createHmac('sha256', secret).update(request.body).digest('hex')}`, 'signed with the endpoint\'s secret');
    const [pushed, moved, deleted] = receiver.accepted.flatMap((entry) => entry.events);
    assert.equal(pushed!.action, 'push');
    assert.match(pushed!.id, /^[0-9a-f-]{36}$/);
    assert.ok(!Number.isNaN(Date.parse(pushed!.timestamp as string)));
    assert.deepEqual(pushed!.target, {
      mediaType: first.mediaType,
      size: first.bytes.length,
      length: first.bytes.length,
      digest: first.digest,
      repository: 'team/api',
      url: `http://${(pushed!.target.url as string).split('/')[2]}/v2/team/api/manifests/${first.digest}`,
      tag: 'prod',
    });
    const requestPart = pushed!.request as Record<string, unknown>;
    assert.equal(requestPart.method, 'PUT');
    assert.equal(requestPart.useragent, 'docker/27.5.1');
    assert.ok(typeof requestPart.id === 'string' && typeof requestPart.addr === 'string' && typeof requestPart.host === 'string');
    assert.deepEqual(pushed!.actor, { name: '' }, 'anonymous: no name, as Distribution writes it');
    assert.ok((pushed!.source as { instanceID: string }).instanceID);
    assert.equal(moved!.action, 'push');
    assert.equal(moved!.target.previousDigest, first.digest);
    assert.equal(moved!.target.digest, second.digest);
    assert.equal(deleted!.action, 'delete');
    assert.deepEqual([deleted!.target.digest, deleted!.target.tag], [second.digest, 'prod']);
    const auditIds = [pushed, moved, deleted].map((event) => event!.audit as number);
    const audit = (await registry.request.get('/api/v1/audit/events?repository=team/api').expect(200)).body.events as Array<{ id: number; action: string }>;
    assert.deepEqual(auditIds, audit.map((event) => event.id).reverse(), 'each names its audit event');
  });

  it('an endpoint ignoring deletes and Docker manifests gets only the rest; the status counts both', async () => {
    await pushManifest(registry.request, 'team/web', 'v1', imageManifest({ docker: true }));
    await pushManifest(registry.request, 'team/web', 'v2', imageManifest());
    await quiet.waitFor(3);
    // Until the endpoint has gone through the whole outbox (each event sent or ignored): then nothing more can come.
    const pendingFor = async (name: string) => ((await registry.request.get('/api/v1/notifications/status').expect(200)).body.endpoints as Array<{ name: string; pending: number }>).find((endpoint) => endpoint.name === name)!.pending;
    while ((await pendingFor('pushes-only')) > 0) await new Promise((resolve) => setImmediate(resolve));
    const got = quiet.accepted.flatMap((entry) => entry.events).map((event) => [event.action, event.target.repository, event.target.tag]);
    assert.deepEqual(got, [['push', 'team/api', 'prod'], ['push', 'team/api', 'prod'], ['push', 'team/web', 'v2']]);
    const status = (await registry.request.get('/api/v1/notifications/status').expect(200)).body.endpoints as Array<{ name: string; delivered: number; ignored: number; pending: number }>;
    const quietStatus = status.find((endpoint) => endpoint.name === 'pushes-only')!;
    assert.deepEqual([quietStatus.delivered, quietStatus.ignored, quietStatus.pending], [3, 2, 0]);
    const offStatus = status.find((endpoint) => endpoint.name === 'switched-off') as unknown as { disabled: boolean; pending: number; delivered: number };
    assert.deepEqual([offStatus.disabled, offStatus.delivered, offStatus.pending], [true, 0, 5], 'a disabled endpoint gets nothing; its events wait');
    assert.equal(off.all.length, 0);
  });

  it('a refused push (an unknown blob, an immutable tag) writes no outbox row', async () => {
    await pushManifest(registry.request, 'prod/api', 'v1', first);
    await receiver.waitFor(6);
    const rows = await outboxRows(registry);
    const stranger = imageManifest();
    await registry.request.put('/v2/team/api/manifests/prod').set('Content-Type', stranger.mediaType).send(stranger.bytes.toString('utf8')).expect(400);
    for (const blob of second.blobs) await pushBlob(registry.request, 'prod/api', blob);
    await registry.request.put('/v2/prod/api/manifests/v1').set('Content-Type', second.mediaType).send(second.bytes.toString('utf8')).expect(403);
    assert.equal(await outboxRows(registry), rows);
  });

  it('a receiver answering 500 gets the event again after a backoff until it takes it; nothing is skipped, the order holds', async () => {
    const before = receiver.accepted.flatMap((entry) => entry.events).length;
    receiver.answer(500);
    await pushManifest(registry.request, 'team/retry', 'a', imageManifest());
    await pushManifest(registry.request, 'team/retry', 'b', imageManifest());
    const deadline = Date.now() + 10_000;
    while (receiver.all.length - receiver.accepted.length < 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    const failing = ((await registry.request.get('/api/v1/notifications/status').expect(200)).body.endpoints as Array<{ name: string; failing: boolean; failed: number; pending: number; lastFailure: { reason: string } }>).find((endpoint) => endpoint.name === 'ci')!;
    assert.equal(failing.failing, true, 'three failures in a row: failing');
    assert.ok(failing.failed >= 3);
    assert.equal(failing.pending, 2);
    assert.equal(failing.lastFailure.reason, 'HTTP 500');
    receiver.answer(200);
    await receiver.waitFor(before + 2);
    const tags = receiver.accepted.flatMap((entry) => entry.events).slice(before).map((event) => event.target.tag);
    assert.deepEqual(tags, ['a', 'b']);
    const recovered = ((await registry.request.get('/api/v1/notifications/status').expect(200)).body.endpoints as Array<{ name: string; failing: boolean; pending: number }>).find((endpoint) => endpoint.name === 'ci')!;
    assert.deepEqual([recovered.failing, recovered.pending], [false, 0]);
  });
});

describe('notification endpoints in the configuration', () => {
  it('takes Distribution\'s keys and refuses bad ones with the key named', async () => {
    const { resolveConfig, ConfigError } = await import('../../src/config/load.js');
    const config = resolveConfig(
      { notifications: { events: { includereferences: true }, endpoints: [{ name: 'alistener', disabled: false, url: 'https://my.listener.com/event', headers: { Authorization: ['Bearer x'] }, timeout: '1s', threshold: 10, backoff: '1s', ignoredmediatypes: ['application/octet-stream'], ignore: { mediatypes: ['application/x'], actions: ['pull'] } }] } },
      {},
      '/srv',
    );
    assert.deepEqual(config.notifications.endpoints, [
      { name: 'alistener', url: 'https://my.listener.com/event', headers: { Authorization: ['Bearer x'] }, timeoutMs: 1000, threshold: 10, backoffMs: 1000, ignoredMediaTypes: ['application/octet-stream', 'application/x'], ignoredActions: ['pull'], disabled: false, secret: '' },
    ]);
    for (const [endpoint, message] of [
      [{ name: 'x', url: 'ftp://nope' }, /endpoints\[0\]\.url: expected an http/],
      [{ name: 'x', url: 'http://a', threshold: 0 }, /threshold: expected a whole number of at least 1/],
      [{ name: 'x', url: 'http://a', ignore: { actions: ['fly'] } }, /ignore\.actions: unknown action "fly"/],
      [{ name: 'x', url: 'http://a', retries: 3 }, /endpoints\[0\]\.retries: unknown field/],
      [{ name: 'x', url: 'https://hook:s3cret@ci.example.com/events' }, /endpoints\[0\]\.url: credentials in the URL are never sent .*headers: \{Authorization: \["Basic/],
      [{ name: 'x', url: 'https://token@ci.example.com/events' }, /endpoints\[0\]\.url: credentials in the URL/],
    ] as const) {
      assert.throws(() => resolveConfig({ notifications: { endpoints: [endpoint] } }, {}, '/srv'), (error: unknown) => error instanceof ConfigError && message.test(error.message));
    }
  });
});

describe('receivers that answer badly', () => {
  it('an endless answer is read for a few KiB, then the registry hangs up; a redirect is not followed', async () => {
    const { createServer } = await import('node:http');
    let written = 0;
    let closedAt: number | null = null;
    const endless = createServer((request, response) => {
      request.resume();
      response.writeHead(500, { 'Content-Type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      chunk.write('receiver overloaded: try later ');
      const pump = () => {
        // 256 MiB at most, at the pace the registry reads it.
        while (written < 256 * 1024 * 1024 && !response.destroyed) {
          written += chunk.length;
          if (!response.write(chunk)) return void response.once('drain', pump);
        }
        response.end();
      };
      response.once('close', () => (closedAt ??= written));
      pump();
    });
    await new Promise<void>((resolve) => endless.listen(0, '127.0.0.1', resolve));
    const target = await startWebhookReceiver();
    const redirecting = createServer((request, response) => {
      request.resume();
      response.writeHead(307, { Location: target.url }).end();
    });
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    const port = (server: typeof endless) => (server.address() as { port: number }).port;
    const registry = await createTestRegistry({
      notifications: {
        endpoints: [
          { name: 'endless', url: `http://127.0.0.1:${port(endless)}/events`, backoff: '10s', threshold: 1 },
          { name: 'moved', url: `http://127.0.0.1:${port(redirecting)}/events`, backoff: '10s', threshold: 1 },
        ],
      },
    });
    try {
      await pushManifest(registry.request, 'team/api', 'v1', imageManifest());
      let endpoints: Array<{ name: string; failing: boolean; lastFailure: { reason: string } | null }> = [];
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        endpoints = (await registry.request.get('/api/v1/notifications/status').expect(200)).body.endpoints;
        if (endpoints.every((endpoint) => endpoint.failing)) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const byName = new Map(endpoints.map((endpoint) => [endpoint.name, endpoint]));
      assert.match(byName.get('endless')!.lastFailure!.reason, /^HTTP 500: receiver overloaded: try later x+$/);
      assert.ok(byName.get('endless')!.lastFailure!.reason.length <= 220, 'the reason keeps a few words of the answer');
      // The status may say failing before the receiver's side has seen the connection close: wait for that (bounded).
      for (const closeDeadline = Date.now() + 5_000; closedAt === null && Date.now() < closeDeadline; ) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(closedAt !== null && closedAt < 32 * 1024 * 1024, `the registry hung up after ${closedAt} bytes of 256 MiB`);
      assert.equal(byName.get('moved')!.lastFailure!.reason, 'HTTP 307', 'a redirect is a failure, not followed');
      assert.equal(target.all.length, 0, 'nothing reached where the redirect pointed');
    } finally {
      await registry.close();
      endless.closeAllConnections();
      await new Promise((resolve) => endless.close(resolve));
      await new Promise((resolve) => redirecting.close(resolve));
      await target.close();
    }
  });
});

describe('the notification outbox is bounded by notifications.retention', () => {
  it('drops what an endpoint did not take in time, counts it, and moves the endpoint past it; delivered rows go too', async () => {
    const { ensureEndpoints, pruneOutbox, readEndpoints } = await import('../../src/metadata/notifications.js');
    const registry = await createTestRegistry();
    try {
      const db = registry.metadata.db;
      await ensureEndpoints(db, ['down', 'up']);
      const day = 86_400_000;
      const now = Date.now();
      await db.insertInto('notification_outbox').values([1, 2, 3, 4].map((id) => ({ id, created_at: id <= 3 ? now - 8 * day : now, payload: '{}' }))).execute();
      await db.updateTable('notification_endpoints').set({ delivered_through: 4 }).where('name', '=', 'up').execute();
      const result = await pruneOutbox(db, now - 7 * day);
      assert.deepEqual(result, { dropped: 3, removed: 3 });
      const states = new Map((await readEndpoints(db)).map((state) => [state.name, state]));
      assert.deepEqual([states.get('down')!.deliveredThrough, states.get('down')!.dropped], [3, 3]);
      assert.deepEqual([states.get('up')!.deliveredThrough, states.get('up')!.dropped], [4, 0]);
      assert.deepEqual((await db.selectFrom('notification_outbox').select('id').execute()).map((row) => Number(row.id)), [4], 'the young row waits for the endpoint that is down');
    } finally {
      await registry.close();
    }
  });
});

/**
 * Every writer notifies and records as a push does (the tag ledger): a restore, a garbage collection
 * of untagged manifests, and a mirror's cached tags first seen, moved upstream and gone upstream.
 */
describe('every writer sends webhooks and writes audit events: restore, GC of untagged manifests, mirror tag moves', () => {
  let registry: TestRegistry;
  let upstream: TestUpstream;
  let receiver: WebhookReceiver;
  before(async () => {
    receiver = await startWebhookReceiver();
    upstream = await startTestUpstream();
    registry = await createTestRegistry({
      // No time machine: a manifest untagged a moment ago is garbage at once (grace=0s below).
      audit: { timeMachineMs: 0 },
      mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**'], ttl: '0s' }),
      notifications: { endpoints: [{ name: 'ci', url: receiver.url, backoff: '50ms' }] },
    });
  });
  after(async () => {
    await registry?.close();
    await upstream?.close();
    await receiver?.close();
  });

  const delivered = () => receiver.accepted.flatMap((request) => request.events);
  const audited = async (query: string) =>
    ((await registry.request.get(`/api/v1/audit/events?${query}`).expect(200)).body as { events: Array<{ action: string; tag: string | null; from: string | null; to: string | null; upstream: string | null }> }).events;

  it('a restore over HTTP and a collection of the manifest it left untagged', async () => {
    const first = imageManifest();
    const second = imageManifest();
    await pushManifest(registry.request, 'team/svc', 'prod', first);
    await pushManifest(registry.request, 'team/svc', 'prod', second);
    await registry.request.post('/api/v1/repositories/team/svc/tags/prod/restore').set('Content-Type', 'application/json').send({ digest: first.digest }).expect(200);
    await receiver.waitFor(3);
    const restored = delivered()[2]!;
    assert.deepEqual([restored.action, restored.target.tag, restored.target.digest, restored.target.previousDigest], ['push', 'prod', first.digest, second.digest]);

    const started = await registry.request.post('/api/v1/gc?dryrun=false&untagged=true&grace=0s').expect(202);
    for (let state = 'running'; state === 'running'; ) {
      state = ((await registry.request.get(`/api/v1/gc/${(started.body as { id: number }).id}`).expect(200)).body as { state: string }).state;
    }
    await receiver.waitFor(4);
    const collected = delivered()[3]!;
    assert.deepEqual([collected.action, collected.target.repository, collected.target.digest, collected.target.tag], ['delete', 'team/svc', second.digest, undefined]);
    const events = await audited('repository=team/svc&action=collected');
    assert.deepEqual(events.map((event) => event.from), [second.digest]);
  });

  it('an import into the mirror cache over HTTP (what `registry import --to` sends)', async () => {
    const image = imageManifest();
    const before = delivered().length;
    const cache = (what: string) => `/api/v1/mirror/cache/team-a/carried/${what}?ns=central`;
    for (const blob of image.blobs) {
      await registry.request.put(cache(`blobs/${blob.digest}`)).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(201);
    }
    await registry.request.put(cache('manifests/1.0')).set('Content-Type', image.mediaType).send(image.bytes.toString()).expect(201);
    await receiver.waitFor(before + 1);
    const [imported] = delivered().slice(before);
    assert.deepEqual([imported!.action, imported!.target.upstream, imported!.target.repository, imported!.target.tag, imported!.target.digest], ['push', 'central', 'team-a/carried', '1.0', image.digest]);
    const events = await audited('repository=team-a/carried&tag=1.0');
    assert.deepEqual(events.map((event) => [event.action, event.upstream]), [['imported', 'central']]);
  });

  it('a mirrored tag first seen, moved upstream and gone upstream', async () => {
    const one = imageManifest();
    const two = imageManifest();
    const agent = await upstream.pusher(['repository:team-a/app:pull,push,delete']);
    await pushManifest(agent, 'team-a/app', 'v1', one);
    const before = delivered().length;
    await registry.request.get('/v2/central/team-a/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
    await pushManifest(agent, 'team-a/app', 'v1', two);
    await registry.request.get('/v2/central/team-a/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
    await agent.delete('/v2/team-a/app/manifests/v1').expect(202);
    await registry.request.get('/v2/central/team-a/app/manifests/v1').set('Accept', allManifestTypes).expect(404);
    await receiver.waitFor(before + 3);
    assert.deepEqual(
      delivered().slice(before).map((event) => [event.action, event.target.upstream, event.target.repository, event.target.tag, event.target.digest, event.target.previousDigest]),
      [
        ['push', 'central', 'team-a/app', 'v1', one.digest, undefined],
        ['push', 'central', 'team-a/app', 'v1', two.digest, one.digest],
        ['delete', 'central', 'team-a/app', 'v1', two.digest, undefined],
      ],
    );
    const events = await audited('repository=team-a/app&tag=v1');
    assert.deepEqual(events.map((event) => [event.action, event.upstream]), [['gone', 'central'], ['moved', 'central'], ['seen', 'central']]);
  });
});
