import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { GarbageCollector } from '../../src/gc/collector.js';
import { insertMirrorManifest, importMirrorTag } from '../../src/metadata/mirror.js';
import { noReceivers, systemOrigin } from '../../src/metadata/audit.js';
import { basic, fetchToken, passwords, writeTestPolicy } from '../helpers/auth.js';
import { allManifestTypes, imageManifest, pushManifest, type TestManifest } from '../helpers/images.js';
import { binary, envelopeCode } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

interface EventJson {
  id: number;
  time: string;
  timeMs: number;
  target: string;
  repository: string;
  tag: string | null;
  upstream: string | null;
  action: string;
  from: string | null;
  to: string | null;
  mediaType: string | null;
  actor: string;
  authMethod: string;
  address: string | null;
  userAgent: string | null;
  requestId: string | null;
  instance: string | null;
  restoredEvent: number | null;
  detail: unknown;
  hash: string;
  prevHash: string;
}

const hour = 3_600_000;
const silent = { info() {}, warn() {}, error() {}, debug() {} } as unknown as ConstructorParameters<typeof GarbageCollector>[1];

async function events(request: supertest.Agent, query = '', auth?: string): Promise<EventJson[]> {
  const call = request.get(`/api/v1/audit/events${query}`);
  if (auth) call.set('Authorization', auth);
  const response = await call.expect(200);
  return (response.body as { events: EventJson[] }).events;
}

function restore(request: supertest.Agent, repository: string, tag: string, body: object | string): supertest.Test {
  return request.post(`/api/v1/repositories/${repository}/tags/${tag}/restore`).set('Content-Type', 'application/json').send(body);
}

/** Pushes with a user agent and request id of the test's choosing, and waits a little so event times differ. */
async function push(request: supertest.Agent, repository: string, reference: string, manifest: TestManifest, headers: Record<string, string> = {}): Promise<void> {
  for (const blob of manifest.blobs) {
    const exists = await request.head(`/v2/${repository}/blobs/${blob.digest}`).set(headers);
    if (exists.status === 200) continue;
    const start = await request.post(`/v2/${repository}/blobs/uploads/`).set(headers).expect(202);
    await request.put(`${start.headers.location as string}${(start.headers.location as string).includes('?') ? '&' : '?'}digest=${blob.digest}`).set(headers).set('Content-Type', 'application/octet-stream').send(blob.bytes).expect(201);
  }
  await request.put(`/v2/${repository}/manifests/${reference}`).set(headers).set('Content-Type', manifest.mediaType).send(manifest.bytes.toString('utf8')).expect(201);
  await sleep(5);
}

describe('audit log over HTTP, auth off: every tag change, with who, from where and through which request', () => {
  let registry: TestRegistry;
  const [one, two, three] = [imageManifest(), imageManifest(), imageManifest({ docker: true })];
  const headers = { 'User-Agent': 'skopeo/1.13.3', 'X-Request-Id': 'push-request-1' };
  before(async () => {
    registry = await createTestRegistry({ audit: { instance: 'replica-a' } });
    await push(registry.request, 'team/api', 'prod', one, headers);
    await push(registry.request, 'team/api', 'prod', two, headers);
    await push(registry.request, 'team/api', 'prod', two, headers); // the same digest again: not a move
    await push(registry.request, 'team/api', 'staging', three, headers);
    await registry.request.delete('/v2/team/api/manifests/staging').set(headers).expect(202);
    await push(registry.request, 'team/api', 'staging', three, headers);
    await push(registry.request, 'team/api', 'canary', three, headers);
    // Deleting the manifest takes both of its tags with it.
    await registry.request.delete(`/v2/team/api/manifests/${three.digest}`).set(headers).expect(202);
  });
  after(async () => registry?.close());

  it('records created, moved and deleted events (and none for a re-push of the same digest), newest first, with every field', async () => {
    const all = await events(registry.request, '?repository=team/api');
    assert.deepEqual(
      all.map((event) => [event.tag, event.action, event.from, event.to]).reverse(),
      [
        ['prod', 'created', null, one.digest],
        ['prod', 'moved', one.digest, two.digest],
        ['staging', 'created', null, three.digest],
        ['staging', 'deleted', three.digest, null],
        ['staging', 'created', null, three.digest],
        ['canary', 'created', null, three.digest],
        ['staging', 'deleted', three.digest, null],
        ['canary', 'deleted', three.digest, null],
      ],
    );
    const moved = all.find((event) => event.action === 'moved')!;
    assert.equal(moved.target, 'tag');
    assert.equal(moved.repository, 'team/api');
    assert.equal(moved.mediaType, two.mediaType);
    assert.equal(moved.actor, 'anonymous');
    assert.equal(moved.authMethod, 'none');
    assert.match(moved.address ?? '', /127\.0\.0\.1|::1|::ffff:127\.0\.0\.1/);
    assert.equal(moved.userAgent, 'skopeo/1.13.3');
    assert.equal(moved.requestId, 'push-request-1');
    assert.equal(moved.instance, 'replica-a');
    assert.equal(moved.upstream, null);
    assert.equal(new Date(moved.time).getTime(), moved.timeMs);
    assert.match(moved.hash, /^[a-f0-9]{64}$/);
    assert.equal(all.find((event) => event.id === moved.id - 1)?.hash, moved.prevHash, 'chained to the event before it');
    assert.ok(all.every((event, index) => index === 0 || event.id < all[index - 1]!.id), 'newest first');
    const verify = await registry.request.get('/api/v1/audit/verify').expect(200);
    assert.equal(verify.body.ok, true);
    assert.equal(verify.body.events, all.length);
  });

  it('filters by tag, digest (from or to), actor, action, time and source, and pages with Link', async () => {
    assert.deepEqual((await events(registry.request, '?repository=team/api&tag=prod')).map((event) => event.action), ['moved', 'created']);
    assert.deepEqual(
      (await events(registry.request, `?digest=${one.digest}`)).map((event) => [event.action, event.from, event.to]),
      [['moved', one.digest, two.digest], ['created', null, one.digest]],
      'a digest matches as from and as to: when was it ever tagged, and when did it stop',
    );
    assert.equal((await events(registry.request, '?action=deleted')).length, 3);
    assert.equal((await events(registry.request, '?actor=anonymous')).length, 8);
    assert.equal((await events(registry.request, '?actor=alice')).length, 0);
    assert.equal((await events(registry.request, '?source=mirror')).length, 0);
    assert.equal((await events(registry.request, '?source=local')).length, 8);
    const all = await events(registry.request);
    const middle = all[4]!;
    const since = await events(registry.request, `?since=${encodeURIComponent(middle.time)}`);
    assert.ok(since.every((event) => event.timeMs >= middle.timeMs) && since.some((event) => event.id === middle.id));
    const until = await events(registry.request, `?until=${encodeURIComponent(middle.time)}`);
    assert.ok(until.every((event) => event.timeMs <= middle.timeMs) && until.some((event) => event.id === middle.id));

    const pages: number[][] = [];
    let next: string | undefined = '/api/v1/audit/events?repository=team%2Fapi&n=3';
    while (next) {
      const response: supertest.Response = await registry.request.get(next).expect(200);
      pages.push((response.body as { events: EventJson[] }).events.map((event) => event.id));
      next = /<([^>]+)>;\s*rel="next"/.exec(response.headers.link ?? '')?.[1];
    }
    assert.deepEqual(pages.map((page) => page.length), [3, 3, 2]);
    assert.deepEqual(pages.flat(), all.map((event) => event.id), 'the pages together are the whole selection, in order');
  });

  it('refuses bad filters, times, cursors and formats with 400, naming the parameter, before reading anything', async () => {
    const cases: Array<[string, string, string]> = [
      ['?repository=Team/API', 'PARAMETER_INVALID', 'repository'],
      ['?tag=-bad', 'PARAMETER_INVALID', 'tag'],
      ['?digest=sha256:abc', 'PARAMETER_INVALID', 'digest'],
      ['?action=renamed', 'PARAMETER_INVALID', 'action'],
      ['?since=yesterday', 'PARAMETER_INVALID', 'since'],
      ['?until=2026-13-45T99:00:00Z', 'PARAMETER_INVALID', 'until'],
      ['?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z', 'PARAMETER_INVALID', 'since'],
      ['?source=elsewhere', 'PARAMETER_INVALID', 'source'],
      ['?format=xml', 'PARAMETER_INVALID', 'format'],
      ['?target=layer', 'PARAMETER_INVALID', 'target'],
      ['?last=abc', 'PAGINATION_NUMBER_INVALID', 'last'],
      ['?n=-1', 'PAGINATION_NUMBER_INVALID', 'n'],
      ['?tag=a&tag=b', 'PARAMETER_INVALID', 'tag'],
    ];
    for (const [query, code, parameter] of cases) {
      const response = await registry.request.get(`/api/v1/audit/events${query}`).expect(400);
      assert.equal(envelopeCode(response), code, query);
      const error = (response.body as { errors: Array<{ message: string; detail?: { parameter?: string } }> }).errors[0]!;
      assert.ok(error.detail?.parameter === parameter || error.message.includes(parameter), `${query}: names ${parameter}: ${error.message}`);
    }
  });

  it('tells what a tag pointed at, at any time: at, before and between moves, and after a delete', async () => {
    const prod = (await events(registry.request, '?repository=team/api&tag=prod')).reverse();
    const [created, moved] = prod;
    assert.ok(created && moved);
    const at = (tag: string, time: number) => registry.request.get(`/api/v1/repositories/team/api/tags/${tag}?at=${encodeURIComponent(new Date(time).toISOString())}`);
    assert.equal((await at('prod', created.timeMs).expect(200)).body.digest, one.digest, 'at the moment it was created');
    assert.equal((await at('prod', moved.timeMs - 1).expect(200)).body.digest, one.digest, 'between the two moves');
    assert.equal((await at('prod', moved.timeMs).expect(200)).body.digest, two.digest);
    assert.equal((await at('prod', Date.now()).expect(200)).body.event.id, moved.id, 'says which event set it');
    const before = await at('prod', created.timeMs - 1).expect(404);
    assert.equal(envelopeCode(before), 'MANIFEST_UNKNOWN');
    const staging = (await events(registry.request, '?repository=team/api&tag=staging')).reverse();
    assert.equal(envelopeCode(await at('staging', staging[1]!.timeMs).expect(404)), 'MANIFEST_UNKNOWN', 'deleted then');
    assert.equal((await at('staging', staging[2]!.timeMs).expect(200)).body.digest, three.digest, 'and back');
    assert.equal(envelopeCode(await registry.request.get('/api/v1/repositories/team/api/tags/prod?at=now').expect(400)), 'PARAMETER_INVALID');
    assert.equal((await registry.request.get('/api/v1/repositories/team/api/tags/prod').expect(200)).body.event.id, moved.id, 'without at: now');
  });

  it('gives a tag\'s whole life as periods: digest, from, until, set by whom', async () => {
    const response = await registry.request.get('/api/v1/repositories/team/api/tags/staging/history').expect(200);
    const periods = (response.body as { periods: Array<{ digest: string; from: string; until: string | null; setBy: { actor: string; address: string; event: number }; endedBy: number | null }> }).periods;
    assert.equal(periods.length, 2, 'created, deleted, created again, deleted with its manifest');
    assert.ok(periods.every((period) => period.digest === three.digest && period.until !== null && period.setBy.actor === 'anonymous'));
    assert.ok(Date.parse(periods[0]!.from) >= Date.parse(periods[1]!.until!), 'newest first');
    const prod = (await registry.request.get('/api/v1/repositories/team/api/tags/prod/history').expect(200)).body as { periods: Array<{ digest: string; until: string | null }> };
    assert.deepEqual(prod.periods.map((period) => [period.digest, period.until === null]), [[two.digest, true], [one.digest, false]]);
    const none = await registry.request.get('/api/v1/repositories/team/api/tags/never/history').expect(200);
    assert.deepEqual(none.body.periods, []);
  });

  it('restores a tag by digest and by event, with a restored event naming the event restored to', async () => {
    const before = await events(registry.request);
    const created = (await events(registry.request, '?repository=team/api&tag=prod&action=created'))[0]!;
    const byDigest = await restore(registry.request, 'team/api', 'prod', { digest: one.digest }).expect(200);
    assert.deepEqual([byDigest.body.from, byDigest.body.to, byDigest.body.restoredEvent, byDigest.body.changed], [two.digest, one.digest, created.id, true]);
    const pulled = await registry.request.get('/v2/team/api/manifests/prod').set('Accept', allManifestTypes).expect(200);
    assert.equal(pulled.headers['docker-content-digest'], one.digest);
    const moved = (await events(registry.request, '?repository=team/api&tag=prod&action=moved'))[0]!;
    const byEvent = await restore(registry.request, 'team/api', 'prod', { event: moved.id }).expect(200);
    assert.equal(byEvent.body.to, two.digest);
    const again = await restore(registry.request, 'team/api', 'prod', { event: moved.id }).expect(200);
    assert.equal(again.body.changed, false, 'already there: nothing to restore');
    const restored = await events(registry.request, '?action=restored');
    assert.deepEqual(restored.map((event) => [event.from, event.to, event.restoredEvent]), [[one.digest, two.digest, moved.id], [two.digest, one.digest, created.id]]);
    assert.equal((await events(registry.request)).length, before.length + 2);

    // The deleted manifest cannot come back; nor can a digest the tag never had.
    const gone = await restore(registry.request, 'team/api', 'staging', { digest: three.digest }).expect(404);
    assert.equal(envelopeCode(gone), 'MANIFEST_UNKNOWN');
    assert.match(gone.body.errors[0].message, /no longer in the repository/);
    const never = await restore(registry.request, 'team/api', 'prod', { digest: three.digest }).expect(404);
    assert.match(never.body.errors[0].message, /never pointed at/);
    const otherTag = await restore(registry.request, 'team/api', 'canary', { event: moved.id }).expect(404);
    assert.match(otherTag.body.errors[0].message, /not an event of team\/api:canary/);
    for (const body of ['{', '{"digest": 5}', '{"digest": "sha256:abc"}', '{"event": "x"}', `{"event": 1, "digest": "${one.digest}"}`]) {
      const bad = await restore(registry.request, 'team/api', 'prod', body).expect(400);
      assert.equal(envelopeCode(bad), 'PARAMETER_INVALID', body);
    }
    assert.equal((await events(registry.request)).length, before.length + 2, 'no refused restore wrote an event');
    assert.equal((await registry.request.get('/v2/team/api/manifests/prod').set('Accept', allManifestTypes).expect(200)).headers['docker-content-digest'], two.digest);
    assert.equal((await registry.request.get('/api/v1/audit/verify').expect(200)).body.ok, true);
  });

  it('exports the selection as JSON lines, oldest first, by format=jsonl or Accept: application/x-ndjson', async () => {
    const all = await events(registry.request, '?n=1000');
    for (const call of [registry.request.get('/api/v1/audit/events?format=jsonl'), registry.request.get('/api/v1/audit/events').set('Accept', 'application/x-ndjson')]) {
      const response = await call.buffer(true).parse(binary).expect(200);
      assert.match(response.headers['content-type'] ?? '', /application\/x-ndjson/);
      const lines = (response.body as Buffer).toString('utf8').trim().split('\n').map((line) => JSON.parse(line) as EventJson);
      assert.deepEqual(lines.map((event) => event.id), all.map((event) => event.id).reverse());
    }
    const prodOnly = await registry.request.get('/api/v1/audit/events?format=jsonl&tag=prod').buffer(true).parse(binary).expect(200);
    assert.ok((prodOnly.body as Buffer).toString('utf8').trim().split('\n').every((line) => (JSON.parse(line) as EventJson).tag === 'prod'));
  });

  it('a move that fails (a blob the registry does not hold) leaves no event and nothing stored', async () => {
    const before = await events(registry.request);
    const rows = await registry.rowCounts();
    const broken = imageManifest();
    const response = await registry.request.put('/v2/team/api/manifests/prod').set('Content-Type', broken.mediaType).send(broken.bytes.toString('utf8')).expect(400);
    assert.equal(envelopeCode(response), 'MANIFEST_BLOB_UNKNOWN');
    assert.deepEqual(await events(registry.request), before);
    assert.deepEqual(await registry.rowCounts(), rows);
  });
});

describe('audit log: optional events, the mirror\'s tags in the same stream, and the time machine', () => {
  it('records unchanged re-pushes, pushes and deletes by digest, blob deletes and counted pulls when configured', async () => {
    const registry = await createTestRegistry({ audit: { recordUnchanged: true, recordManifests: true, recordBlobs: true, recordPulls: true } });
    try {
      const image = imageManifest();
      await push(registry.request, 'team/app', 'v1', image);
      await push(registry.request, 'team/app', 'v1', image);
      const byDigest = imageManifest();
      await push(registry.request, 'team/app', byDigest.digest, byDigest);
      for (let pull = 0; pull < 3; pull++) await registry.request.get('/v2/team/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
      await registry.request.head('/v2/team/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
      await registry.request.get(`/v2/team/app/manifests/${byDigest.digest}`).set('Accept', allManifestTypes).expect(200);
      await registry.registry.pulls?.flush();
      await registry.request.delete(`/v2/team/app/manifests/${byDigest.digest}`).expect(202);
      await registry.request.delete(`/v2/team/app/blobs/${byDigest.blobs[1]!.digest}`).expect(202);
      const all = (await events(registry.request)).reverse();
      assert.deepEqual(
        all.map((event) => [event.target, event.action, event.tag, event.from, event.to]),
        [
          ['tag', 'created', 'v1', null, image.digest],
          ['tag', 'unchanged', 'v1', image.digest, image.digest],
          ['manifest', 'pushed', null, null, byDigest.digest],
          ['tag', 'pulled', 'v1', null, image.digest],
          ['manifest', 'pulled', null, null, byDigest.digest],
          ['manifest', 'deleted', null, byDigest.digest, null],
          ['blob', 'deleted', null, byDigest.blobs[1]!.digest, null],
        ],
      );
      assert.deepEqual((all[3]!.detail as { count: number }).count, 3, 'three GETs counted as one event; a HEAD is not a pull');
      const tag = await registry.metadata.db.selectFrom('tags').select('pulled_at').where('name', '=', 'v1').executeTakeFirstOrThrow();
      assert.ok(Number(tag.pulled_at) > 0, 'the tag keeps its last-pulled time');
      assert.equal((await registry.request.get('/api/v1/audit/verify').expect(200)).body.ok, true);
    } finally {
      await registry.close();
    }
  });

  it('by default writes no event for pulls or re-pushes, and none for pushes by digest', async () => {
    const registry = await createTestRegistry();
    try {
      const image = imageManifest();
      await push(registry.request, 'team/app', 'v1', image);
      await push(registry.request, 'team/app', 'v1', image);
      const byDigest = imageManifest();
      await push(registry.request, 'team/app', byDigest.digest, byDigest);
      await registry.request.get('/v2/team/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
      assert.equal(registry.registry.pulls, null);
      assert.deepEqual((await events(registry.request)).map((event) => event.action), ['created']);
    } finally {
      await registry.close();
    }
  });

  it('mirrored tags are in the same stream, named by their upstream; their history reads through the mirrored name', async () => {
    const registry = await createTestRegistry({ mirror: { upstreams: { central: { url: 'http://127.0.0.1:1', prefix: 'central' } } } });
    try {
      const from = { upstream: 'central', repository: 'library/alpine' };
      const [first, second] = [imageManifest(), imageManifest()];
      for (const manifest of [first, second]) await insertMirrorManifest(registry.metadata.db, from, { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length, payload: manifest.bytes }, Date.now());
      await registry.metadata.db.transaction().execute((transaction) => importMirrorTag(transaction, from, '3.19', first.digest, Date.now() - 1000, systemOrigin('import'), Date.now(), noReceivers));
      await registry.metadata.db.transaction().execute((transaction) => importMirrorTag(transaction, from, '3.19', second.digest, Date.now(), systemOrigin('import'), Date.now(), noReceivers));
      await push(registry.request, 'team/app', 'v1', imageManifest());
      const mirrored = await events(registry.request, '?source=mirror');
      assert.deepEqual(mirrored.map((event) => [event.upstream, event.repository, event.tag, event.action, event.from, event.to]), [
        ['central', 'library/alpine', '3.19', 'imported', first.digest, second.digest],
        ['central', 'library/alpine', '3.19', 'imported', null, first.digest],
      ]);
      assert.equal((await events(registry.request, '?upstream=central&tag=3.19')).length, 2);
      assert.equal((await events(registry.request)).length, 3, 'one query covers local and mirrored names');
      const history = await registry.request.get('/api/v1/repositories/central/library/alpine/tags/3.19/history').expect(200);
      assert.equal(history.body.upstream, 'central');
      assert.deepEqual(history.body.periods.map((period: { digest: string }) => period.digest), [second.digest, first.digest]);
      const legacy = await registry.request.get('/api/v1/mirror/history?tag=3.19').expect(200);
      assert.equal(legacy.body.events.length, 2, 'the mirror history API reads the same events');
    } finally {
      await registry.close();
    }
  });

  it('a mirrored tag\'s history answers under every name clients use for it: docs/mirror.md\'s docker.io/library/alpine, the prefix, ?ns=', async () => {
    const registry = await createTestRegistry({ mirror: { default: 'docker.io', upstreams: { 'docker.io': { url: 'http://127.0.0.1:1', prefix: 'dockerhub' } } } });
    try {
      const from = { upstream: 'docker.io', repository: 'library/alpine' };
      const image = imageManifest();
      await insertMirrorManifest(registry.metadata.db, from, { digest: image.digest, mediaType: image.mediaType, size: image.bytes.length, payload: image.bytes }, Date.now());
      await registry.metadata.db.transaction().execute((transaction) => importMirrorTag(transaction, from, '3.20', image.digest, Date.now(), systemOrigin('import'), Date.now(), noReceivers));
      for (const path of [
        '/api/v1/repositories/docker.io/library/alpine/-/tags/3.20/history',
        '/api/v1/repositories/docker.io/alpine/-/tags/3.20/history',
        '/api/v1/repositories/dockerhub/library/alpine/-/tags/3.20/history',
        '/api/v1/repositories/library/alpine/-/tags/3.20/history?ns=docker.io',
        '/api/v1/repositories/alpine/-/tags/3.20/history',
      ]) {
        const history = await registry.request.get(path).expect(200);
        assert.equal(history.body.upstream, 'docker.io', path);
        assert.deepEqual(history.body.periods.map((period: { digest: string }) => period.digest), [image.digest], path);
      }
    } finally {
      await registry.close();
    }
  });

  it('garbage collection keeps what a tag pointed at within audit.timemachine, so a restore works; past it the manifest is collected (a collected event) and a restore says so', async () => {
    const registry = await createTestRegistry();
    try {
      const [old, current] = [imageManifest(), imageManifest()];
      await push(registry.request, 'team/app', 'prod', old);
      await push(registry.request, 'team/app', 'prod', current);
      const db = registry.metadata.db;
      await db.updateTable('blobs').set((eb) => ({ created_at: eb('created_at', '-', 2 * hour), used_at: eb('used_at', '-', 2 * hour) })).execute();
      await db.updateTable('manifests').set((eb) => ({ created_at: eb('created_at', '-', 2 * hour), used_at: eb('used_at', '-', 2 * hour) })).execute();
      await db.updateTable('repository_blobs').set((eb) => ({ created_at: eb('created_at', '-', 2 * hour) })).execute();
      const stores = { storage: registry.storage, metadata: db, clock: registry.clock };

      const kept = await new GarbageCollector(stores, silent, null, 14 * 24 * hour, noReceivers).run({ dryRun: false, untagged: true, graceMs: hour });
      assert.equal(kept.manifests, 0, 'the manifest prod pointed at a moment ago stays (14 days by default)');
      assert.deepEqual(
        kept.kept.timeMachine,
        { manifests: 1, blobs: old.blobs.length + 1, bytes: old.blobs.reduce((sum, blob) => sum + blob.bytes.length, 0) + old.bytes.length },
        'the report says what the time machine keeps: the manifest, its own bytes, config and layer',
      );
      assert.deepEqual(kept.kept.grace, { manifests: 0, blobs: 0, bytes: 0 }, 'everything is older than the grace window');
      await restore(registry.request, 'team/app', 'prod', { digest: old.digest }).expect(200);
      await restore(registry.request, 'team/app', 'prod', { digest: current.digest }).expect(200);

      const collected = await new GarbageCollector(stores, silent, null, 0, noReceivers).run({ dryRun: false, untagged: true, graceMs: hour });
      assert.equal(collected.manifests, 1, 'with no time machine the old manifest goes');
      const [event] = await events(registry.request, '?action=collected');
      assert.deepEqual([event?.target, event?.from, event?.actor, event?.authMethod], ['manifest', old.digest, 'system$gc', 'system']);
      const refused = await restore(registry.request, 'team/app', 'prod', { digest: old.digest }).expect(404);
      assert.match(refused.body.errors[0].message, /collected after audit\.timemachine/);
      assert.equal((await registry.request.get('/api/v1/audit/verify').expect(200)).body.ok, true);
    } finally {
      await registry.close();
    }
  });
});

describe('audit log with auth on: the account, how it proved itself, and the address behind a trusted proxy', () => {
  let registry: TestRegistry;
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  const alice = basic('alice', passwords.alice);
  const bob = basic('bob', passwords.bob);
  const robot = basic('robot$ci', passwords.robot);
  before(async () => {
    files = await writeTestPolicy();
    registry = await createTestRegistry({ auth: { mode: 'htpasswd', policy: files.policy, htpasswd: { path: files.htpasswd } }, trustProxy: true });
  });
  after(async () => registry?.close());

  it('names alice, basic, and the address X-Forwarded-For gives; bob and anonymous may not read it', async () => {
    const [first, second] = [imageManifest(), imageManifest()];
    await push(registry.request, 'team-a/api', 'prod', first, { Authorization: alice, 'X-Forwarded-For': '203.0.113.7' });
    await push(registry.request, 'team-a/api', 'prod', second, { Authorization: alice, 'X-Forwarded-For': '203.0.113.8, 10.0.0.1' });
    const all = await events(registry.request, '', alice);
    assert.deepEqual(all.map((event) => [event.action, event.actor, event.authMethod, event.address]), [
      ['moved', 'alice', 'basic', '203.0.113.8'],
      ['created', 'alice', 'basic', '203.0.113.7'],
    ]);
    assert.equal((await registry.request.get('/api/v1/audit/events').set('Authorization', bob).expect(403)).status, 403, 'bob has no audit grant');
    await registry.request.get('/api/v1/audit/events').expect(401);
    await registry.request.get('/api/v1/audit/verify').set('Authorization', bob).expect(403);
    await registry.request.get('/api/v1/repositories/team-a/api/tags/prod/history').set('Authorization', bob).expect(403);
    await registry.request.get('/api/v1/repositories/team-a/api/tags/prod/history').set('Authorization', alice).expect(200);
  });

  it('a restore needs push on the repository and the audit grant', async () => {
    const [created] = await events(registry.request, '?action=created', alice);
    const restore = (auth: string) => registry.request.post('/api/v1/repositories/team-a/api/tags/prod/restore').set('Authorization', auth).set('Content-Type', 'application/json').send({ event: created!.id });
    assert.equal(envelopeCode(await restore(bob).expect(403)), 'DENIED', 'bob may only pull');
    const robotRefused = await registry.request.post('/api/v1/repositories/team-b/tool/tags/v1/restore').set('Authorization', robot).set('Content-Type', 'application/json').send({ event: created!.id }).expect(403);
    assert.match(robotRefused.body.errors[0].message, /audit grant/, 'the robot may push team-b/** but not read the audit log');
    const done = await restore(alice).set('X-Forwarded-For', '198.51.100.9').expect(200);
    assert.equal(done.body.changed, true);
    const [restored] = await events(registry.request, '?action=restored', alice);
    assert.deepEqual([restored?.actor, restored?.address, restored?.restoredEvent], ['alice', '198.51.100.9', created!.id]);
  });

  it('with token auth: the method is token, and reading needs registry:audit:* in the token', async () => {
    const tokenRegistry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
    try {
      const push = await fetchToken(tokenRegistry.request, ['alice', passwords.alice], ['repository:team-a/web:pull,push']);
      await pushManifest(supertest.agent(tokenRegistry.registry.app.callback()).set('Authorization', `Bearer ${push}`), 'team-a/web', 'v1', imageManifest());
      const withoutAudit = await tokenRegistry.request.get('/api/v1/audit/events').set('Authorization', `Bearer ${push}`).expect(401);
      assert.match(withoutAudit.headers['www-authenticate'] ?? '', /scope="registry:audit:\*"/);
      const auditToken = await fetchToken(tokenRegistry.request, ['alice', passwords.alice], ['registry:audit:*']);
      const listed = await events(tokenRegistry.request, '', `Bearer ${auditToken}`);
      assert.deepEqual(listed.map((event) => [event.action, event.actor, event.authMethod]), [['created', 'alice', 'token']]);
      const bobToken = await fetchToken(tokenRegistry.request, ['bob', passwords.bob], ['registry:audit:*']);
      const bobRefused = await tokenRegistry.request.get('/api/v1/audit/events').set('Authorization', `Bearer ${bobToken}`);
      assert.ok([401, 403].includes(bobRefused.status), `bob's token carries no audit grant: ${bobRefused.status}`);
    } finally {
      await tokenRegistry.close();
    }
  });
});
