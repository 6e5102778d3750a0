import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import type { RetentionReport } from '../../src/retention/retention-service.js';
import { basic, fetchToken, passwords, writeTestPolicy } from '../helpers/auth.js';
import { imageManifest, pushManifest } from '../helpers/images.js';
import { envelopeCode } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const day = 86_400_000;

/**
 * The story: a retention policy deletes every tag but the newest of each repository. alice may read
 * the catalog and team-a/** but not team-b/**; olga is the registry's operator. alice's dry run shows
 * her own repositories only; her real run and her garbage collection are refused; olga's run deletes,
 * and every event says olga asked for it.
 */
describe('operations that act on the whole registry need the operator grant', () => {
  let registry: TestRegistry;
  let directory: string;
  let receiver: WebhookReceiver;
  const token = (user: keyof typeof passwords, scopes: string[]) => fetchToken(registry.request, [user, passwords[user]], scopes);
  const as = (bearer: string) => supertest.agent(registry.registry.app.callback()).set('Authorization', `Bearer ${bearer}`);
  const tagsOf = async (repository: string) => {
    const bearer = await token('carol', [`repository:${repository}:pull`]);
    return ((await as(bearer).get(`/v2/${repository}/tags/list`).expect(200)).body as { tags: string[] }).tags.sort();
  };

  before(async () => {
    receiver = await startWebhookReceiver();
    const files = await writeTestPolicy();
    directory = files.directory;
    registry = await createTestRegistry({
      auth: { mode: 'token', policy: files.policy, htpasswd: { path: files.htpasswd } },
      retention: { policies: [{ repositories: ['**'], keep: { mostRecent: 1 } }] },
      gc: { graceMs: 0, untagged: true },
      audit: { timeMachineMs: 0 },
      notifications: { endpoints: [{ name: 'ci', url: `${receiver.url}?token=receiver-secret-in-query`, backoff: '50ms' }] },
    });
    const alicePush = as(await token('alice', ['repository:team-a/app:pull,push']));
    const robotPush = supertest.agent(registry.registry.app.callback()).set('Authorization', `Bearer ${await fetchToken(registry.request, ['robot$ci', passwords.robot], ['repository:team-b/svc:pull,push'])}`);
    for (const [agent, repository] of [[alicePush, 'team-a/app'], [robotPush, 'team-b/svc']] as const) {
      for (const [index, tag] of ['v1', 'v2', 'v3', 'v4'].entries()) {
        await pushManifest(agent, repository, tag, imageManifest());
        const row = await registry.metadata.db.selectFrom('repositories').select('id').where('name', '=', repository).executeTakeFirstOrThrow();
        await registry.metadata.db.updateTable('tags').set({ updated_at: Date.now() - (10 - index) * day }).where('repository_id', '=', row.id).where('name', '=', tag).execute();
      }
    }
  });
  after(async () => {
    await registry?.close();
    await receiver?.close();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('alice (catalog, team-a/** only) gets a dry run naming her own repositories, nothing of team-b/svc', async () => {
    const bearer = await token('alice', ['registry:catalog:*']);
    const report = (await as(bearer).post('/api/v1/retention?dryrun=true').expect(200)).body as RetentionReport;
    assert.deepEqual(report.deleted.map((entry) => `${entry.repository}:${entry.tag}`).sort(), ['team-a/app:v1', 'team-a/app:v2', 'team-a/app:v3']);
    assert.equal(report.repositories, 1);
    assert.ok(!JSON.stringify(report).includes('team-b'), 'no name or digest of a repository she cannot read');
    assert.equal(report.untagged, null);
  });

  it('alice\'s real run and her garbage collection are refused, and nothing is deleted', async () => {
    const catalogToken = await token('alice', ['registry:catalog:*', 'registry:operator:*']);
    const retention = await as(catalogToken).post('/api/v1/retention?dryrun=false');
    assert.equal(retention.status, 403, 'her token asked for the operator grant and was not given it');
    assert.equal(envelopeCode(retention), 'DENIED');
    for (const [method, path] of [['post', '/api/v1/gc?dryrun=false'], ['post', '/api/v1/gc?dryrun=true'], ['get', '/api/v1/gc'], ['get', '/api/v1/gc/1'], ['get', '/api/v1/notifications/status']] as const) {
      const refused = await as(catalogToken)[method](path);
      assert.equal(refused.status, 403, `${method} ${path}`);
    }
    // With a token that never asked for it, the challenge names the operator scope, so a client can ask.
    const plain = await as(await token('alice', ['registry:catalog:*'])).post('/api/v1/retention?dryrun=false').expect(401);
    assert.match(String(plain.headers['www-authenticate']), /scope="registry:operator:\*",error="insufficient_scope"/);
    await registry.request.post('/api/v1/gc').expect(401);
    // Basic credentials, the robot, and a dry run by someone with neither the catalog nor the operator grant.
    await registry.request.post('/api/v1/retention?dryrun=false').set('Authorization', basic('alice', passwords.alice)).expect(401);
    const robot = await fetchToken(registry.request, ['robot$ci', passwords.robot], ['registry:operator:*', 'registry:catalog:*']);
    await as(robot).post('/api/v1/retention?dryrun=false').expect(403);
    await as(robot).post('/api/v1/retention?dryrun=true').expect(403);
    await as(robot).get('/api/v1/gc').expect(403);
    assert.deepEqual(await tagsOf('team-b/svc'), ['v1', 'v2', 'v3', 'v4']);
    assert.deepEqual(await tagsOf('team-a/app'), ['v1', 'v2', 'v3', 'v4']);
    assert.equal((await registry.metadata.db.selectFrom('gc_runs').select('id').execute()).length, 0, 'no collection was started');
  });

  it('olga (operator) runs it: the tags go, and each event names the policy and that olga asked, from where', async () => {
    const bearer = await token('olga', ['registry:operator:*']);
    const dry = (await as(bearer).post('/api/v1/retention?dryrun=true').expect(200)).body as RetentionReport;
    assert.equal(dry.deleted.length, 6, 'an operator\'s dry run shows the whole registry');
    const report = (await as(bearer).post('/api/v1/retention?dryrun=false').set('User-Agent', 'curl/8.5.0').set('X-Request-Id', 'olga-cleanup-1').expect(200)).body as RetentionReport;
    assert.equal(report.deleted.length, 6);
    assert.deepEqual(await tagsOf('team-b/svc'), ['v4']);
    const events = await registry.metadata.db.selectFrom('audit_events').selectAll().where('action', '=', 'deleted').orderBy('id').execute();
    assert.equal(events.length, 6);
    for (const event of events) {
      assert.equal(event.actor, 'retention.policies[0]');
      assert.deepEqual(JSON.parse(event.detail ?? 'null'), { triggeredBy: 'olga' });
      assert.equal(event.user_agent, 'curl/8.5.0');
      assert.equal(event.request_id, 'olga-cleanup-1');
      assert.ok(event.address);
    }
  });

  it('olga starts a garbage collection; its report and its events say she did', async () => {
    const bearer = await token('olga', ['registry:operator:*']);
    const started = await as(bearer).post('/api/v1/gc?dryrun=false').set('X-Request-Id', 'olga-gc-1').expect(202);
    const id = (started.body as { id: number }).id;
    let run: { state: string; report: { startedBy?: { account: string; requestId: string | null } } | null } | undefined;
    for (let attempt = 0; attempt < 200 && (!run || run.state === 'running'); attempt++) {
      run = (await as(bearer).get(`/api/v1/gc/${id}`).expect(200)).body as typeof run;
      if (run?.state === 'running') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(run?.state, 'succeeded');
    assert.deepEqual({ account: run?.report?.startedBy?.account, requestId: run?.report?.startedBy?.requestId }, { account: 'olga', requestId: 'olga-gc-1' });
    const collected = await registry.metadata.db.selectFrom('audit_events').selectAll().where('action', '=', 'collected').execute();
    assert.equal(collected.length, 6, 'the manifests the deleted tags left untagged');
    for (const event of collected) {
      assert.equal(event.actor, 'system$gc');
      assert.deepEqual(JSON.parse(event.detail ?? 'null'), { triggeredBy: 'olga' });
      assert.equal(event.request_id, 'olga-gc-1');
    }
  });

  it('the webhook status is for operators, and shows no secret of the endpoint\'s URL', async () => {
    const bearer = await token('olga', ['registry:operator:*']);
    const status = await as(bearer).get('/api/v1/notifications/status').expect(200);
    const endpoint = (status.body as { endpoints: Array<{ url: string }> }).endpoints[0]!;
    assert.equal(endpoint.url, `${receiver.url}?[redacted]`);
    assert.ok(!JSON.stringify(status.body).includes('receiver-secret-in-query'));
  });
});
