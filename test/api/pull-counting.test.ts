import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resolutionWindowMs } from '../../src/audit/pull-recorder.js';
import { plainAddress } from '../../src/http/client-address.js';
import { ManualClock } from '../helpers/clock.js';
import { allManifestTypes, imageManifest, pushManifest, type TestManifest } from '../helpers/images.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

interface PullEvent {
  target: string;
  tag: string | null;
  to: string | null;
  address: string | null;
  detail: { count: number };
}

async function pullEvents(registry: TestRegistry, repository: string): Promise<PullEvent[]> {
  await registry.registry.pulls?.flush();
  const events = (await registry.request.get(`/api/v1/audit/events?repository=${repository}&action=pulled`).expect(200)).body.events as PullEvent[];
  return events.reverse();
}

async function pulledAt(registry: TestRegistry, repository: string, tag: string): Promise<number | null> {
  const rows = (await registry.request.get(`/api/v1/repositories/${repository}/-/tags`).expect(200)).body.tags as Array<{ name: string; pulledAt: string | null }>;
  const row = rows.find((entry) => entry.name === tag);
  assert.ok(row, `${repository}:${tag} is listed`);
  return row.pulledAt === null ? null : Date.parse(row.pulledAt);
}

/** One client of the registry, told apart by its address (X-Forwarded-For, trusted here). */
function client(registry: TestRegistry, address: string) {
  return {
    head: (path: string) => registry.request.head(path).set('X-Forwarded-For', address).set('Accept', allManifestTypes).expect(200),
    get: (path: string) => registry.request.get(path).set('X-Forwarded-For', address).set('Accept', allManifestTypes).expect(200),
  };
}

describe('pulls of a tag, as each client pulls', () => {
  let registry: TestRegistry;
  let receiver: WebhookReceiver;
  const shared = imageManifest();
  const single = imageManifest();
  before(async () => {
    receiver = await startWebhookReceiver();
    registry = await createTestRegistry({
      trustProxy: true,
      audit: { recordPulls: true },
      notifications: { endpoints: [{ name: 'pulls', url: receiver.url, backoff: '50ms', ignore: { actions: ['push'] } }] },
    });
    await pushManifest(registry.request, 'team/web', 'v1', shared);
    await pushManifest(registry.request, 'team/web', 'stable', shared);
    await pushManifest(registry.request, 'team/web', 'edge', single);
  });
  after(async () => {
    await registry?.close();
    await receiver?.close();
  });

  it('docker and containerd: a HEAD of the tag, then a GET of its digest, is one pull of that tag (even when another tag names the digest)', async () => {
    const docker = client(registry, '10.0.0.1');
    const head = await docker.head('/v2/team/web/manifests/v1');
    assert.equal(head.headers['docker-content-digest'], shared.digest);
    await docker.get(`/v2/team/web/manifests/${shared.digest}`);
    const events = await pullEvents(registry, 'team/web');
    assert.deepEqual(
      events.map((event) => [event.target, event.tag, event.to, event.address, event.detail.count]),
      [['tag', 'v1', shared.digest, '10.0.0.1', 1]],
    );
    assert.ok((await pulledAt(registry, 'team/web', 'v1')) !== null, 'v1 was pulled');
    assert.equal(await pulledAt(registry, 'team/web', 'stable'), null, 'stable names the same digest but was not asked for');
  });

  it('podman and skopeo: a GET of the tag is a pull; the same client\'s GET of that digest right after is the same pull', async () => {
    const podman = client(registry, '10.0.0.2');
    await podman.get('/v2/team/web/manifests/stable');
    await podman.get(`/v2/team/web/manifests/${shared.digest}`);
    const events = (await pullEvents(registry, 'team/web')).filter((event) => event.address === '10.0.0.2');
    assert.deepEqual(events.map((event) => [event.target, event.tag, event.to, event.detail.count]), [['tag', 'stable', shared.digest, 1]]);
    assert.ok((await pulledAt(registry, 'team/web', 'stable')) !== null);
  });

  it('a GET by digest with no tag resolved before: a pull of the one tag naming it, or of the digest alone when several do', async () => {
    const byDigest = client(registry, '10.0.0.3');
    await byDigest.get(`/v2/team/web/manifests/${single.digest}`);
    await byDigest.get(`/v2/team/web/manifests/${shared.digest}`);
    const events = (await pullEvents(registry, 'team/web')).filter((event) => event.address === '10.0.0.3');
    assert.deepEqual(
      events.map((event) => [event.target, event.tag, event.to]),
      [
        ['tag', 'edge', single.digest],
        ['manifest', null, shared.digest],
      ],
    );
    assert.ok((await pulledAt(registry, 'team/web', 'edge')) !== null, 'edge is the only tag naming its digest');
  });

  it('another client\'s resolution does not make a GET by digest a pull of the tag; a HEAD alone is no pull', async () => {
    const before = (await pullEvents(registry, 'team/web')).length;
    await client(registry, '10.0.0.4').head('/v2/team/web/manifests/v1');
    await client(registry, '10.0.0.5').get(`/v2/team/web/manifests/${shared.digest}`);
    const events = (await pullEvents(registry, 'team/web')).slice(before);
    assert.deepEqual(events.map((event) => [event.target, event.tag, event.address]), [['manifest', null, '10.0.0.5']]);
  });

  it('every pull is notified as Distribution\'s pull, with the tag when there is one', async () => {
    await receiver.waitFor(5);
    const pulls = receiver.accepted.flatMap((request) => request.events).map((event) => [event.action, event.target.tag ?? null, event.target.digest]);
    assert.deepEqual(pulls, [
      ['pull', 'v1', shared.digest],
      ['pull', 'stable', shared.digest],
      ['pull', 'edge', single.digest],
      ['pull', null, shared.digest],
      ['pull', null, shared.digest],
    ]);
  });

  it('an IPv4 client of a dual-stack listener is recorded under its plain address', async () => {
    await client(registry, '::ffff:10.0.0.9').get('/v2/team/web/manifests/edge');
    const events = await pullEvents(registry, 'team/web');
    assert.equal(events.at(-1)!.address, '10.0.0.9');
    assert.equal(plainAddress('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(plainAddress('::ffff:c000:201'), '::ffff:c000:201', 'only the dotted IPv4 form is mapped');
    assert.equal(plainAddress('2001:db8::1'), '2001:db8::1');
  });
});

describe('pulls of a tag: the resolution is remembered for a while only', () => {
  const clock = new ManualClock();
  let registry: TestRegistry;
  const shared: TestManifest = imageManifest();
  before(async () => {
    registry = await createTestRegistry({ clock, audit: { recordPulls: true } });
    await pushManifest(registry.request, 'team/app', 'a', shared);
    await pushManifest(registry.request, 'team/app', 'b', shared);
  });
  after(async () => registry?.close());

  it('a GET of the digest long after the HEAD of the tag is a pull of the digest only', async () => {
    await registry.request.head('/v2/team/app/manifests/a').set('Accept', allManifestTypes).expect(200);
    clock.advance(resolutionWindowMs + 1);
    await registry.request.get(`/v2/team/app/manifests/${shared.digest}`).set('Accept', allManifestTypes).expect(200);
    await registry.request.head('/v2/team/app/manifests/b').set('Accept', allManifestTypes).expect(200);
    clock.advance(resolutionWindowMs - 1);
    await registry.request.get(`/v2/team/app/manifests/${shared.digest}`).set('Accept', allManifestTypes).expect(200);
    const events = await pullEvents(registry, 'team/app');
    assert.deepEqual(
      events.map((event) => [event.target, event.tag]),
      [
        ['manifest', null],
        ['tag', 'b'],
      ],
    );
  });
});
