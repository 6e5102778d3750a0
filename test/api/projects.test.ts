import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { claimsOf, fetchToken } from '../helpers/auth.js';
import { allManifestTypes, imageManifest, pushManifest } from '../helpers/images.js';
import { envelopeCode } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { ManualClock } from '../helpers/clock.js';

const bootstrap = { actor: 'system$command-line', authMethod: 'system', address: null, userAgent: null, requestId: null };
const password = (name: string) => `${name}-password-1`;

/**
 * A registry run on database accounts alone (no policy file): projects with members and roles as
 * Harbor has them, managed over /api/v1/projects by a system admin and a project's admin, with
 * docker's token flow.
 */
describe('projects, members and roles', () => {
  let registry: TestRegistry;
  const token = (name: string, scopes: string[]) => fetchToken(registry.request, [name, password(name)], scopes);
  const asUser = async (name: string, scopes: string[] = []) => `Bearer ${await token(name, scopes)}`;
  const grantedActions = async (name: string | null, repository: string) => {
    const issued = await fetchToken(registry.request, name ? [name, password(name)] : null, [`repository:${repository}:pull,push,delete`]);
    return ((claimsOf(issued).access as Array<{ actions: string[] }>)[0]?.actions ?? []).sort();
  };

  before(async () => {
    registry = await createTestRegistry({ auth: { mode: 'token' } });
    await registry.registry.services.accounts.create({ name: 'root', password: password('root'), admin: true }, bootstrap);
    const root = await asUser('root', ['registry:admin:*']);
    for (const name of ['dana', 'erin', 'frank', 'gina']) await registry.request.post('/api/v1/accounts').set('Authorization', root).send({ name, password: password(name) }).expect(201);
    await registry.request.post('/api/v1/projects').set('Authorization', root).send({ name: 'team-x' }).expect(201);
    await registry.request.post('/api/v1/projects').set('Authorization', root).send({ name: 'pub', public: true, quota: { storage: 1_000_000 } }).expect(201);
    for (const [account, role] of [['gina', 'admin'], ['dana', 'developer'], ['erin', 'guest']] as const) {
      await registry.request.put(`/api/v1/projects/team-x/members/${account}`).set('Authorization', root).send({ role }).expect(200);
    }
  });
  after(async () => {
    await registry.close();
  });

  it('grants by role inside a project; outside projects, every signed-in account may still do everything', async () => {
    assert.deepEqual(await grantedActions('gina', 'team-x/app'), ['delete', 'pull', 'push']);
    assert.deepEqual(await grantedActions('dana', 'team-x/app'), ['pull', 'push']);
    assert.deepEqual(await grantedActions('erin', 'team-x/app'), ['pull']);
    assert.deepEqual(await grantedActions('frank', 'team-x/app'), [], 'a signed-in non-member gets nothing inside a project');
    assert.deepEqual(await grantedActions(null, 'team-x/app'), []);
    assert.deepEqual(await grantedActions(null, 'pub/tool'), ['pull'], 'a public project: anyone pulls');
    assert.deepEqual(await grantedActions('frank', 'pub/tool'), ['pull']);
    assert.deepEqual(await grantedActions('frank', 'elsewhere/app'), ['delete', 'pull', 'push'], 'outside projects the old default stays');
    assert.deepEqual(await grantedActions('root', 'team-x/app'), ['delete', 'pull', 'push']);

    const image = imageManifest();
    await pushManifest(registry.request.set('Authorization', await asUser('dana', ['repository:team-x/app:pull,push'])), 'team-x/app', 'v1', image);
    const erin = await asUser('erin', ['repository:team-x/app:pull,push']);
    await registry.request.get('/v2/team-x/app/manifests/v1').set('Authorization', erin).set('Accept', allManifestTypes).expect(200);
    assert.equal(envelopeCode(await registry.request.put('/v2/team-x/app/manifests/v2').set('Authorization', erin).set('Content-Type', image.mediaType).send(image.bytes.toString()).expect(403)), 'DENIED');
  });

  it('one-component names belong to the project library, as in Harbor', async () => {
    const root = await asUser('root', ['registry:admin:*']);
    assert.deepEqual(await grantedActions('frank', 'alpine'), ['delete', 'pull', 'push'], 'before there is a library project');
    await registry.request.post('/api/v1/projects').set('Authorization', root).send({ name: 'library' }).expect(201);
    assert.deepEqual(await grantedActions('frank', 'alpine'), []);
    assert.deepEqual(await grantedActions('root', 'alpine'), ['delete', 'pull', 'push']);
  });

  it('no escalation: a developer cannot make themself admin, a project admin manages only their project, only system admins create and delete projects', async () => {
    const dana = await asUser('dana');
    assert.equal(envelopeCode(await registry.request.put('/api/v1/projects/team-x/members/dana').set('Authorization', dana).send({ role: 'admin' }).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await registry.request.patch('/api/v1/projects/team-x').set('Authorization', dana).send({ public: true }).expect(403)), 'DENIED');
    const gina = await asUser('gina', ['registry:admin:*']);
    await registry.request.put('/api/v1/projects/team-x/members/frank').set('Authorization', gina).send({ role: 'guest' }).expect(200);
    assert.equal(envelopeCode(await registry.request.patch('/api/v1/projects/pub').set('Authorization', gina).send({ public: false }).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await registry.request.put('/api/v1/projects/pub/members/gina').set('Authorization', gina).send({ role: 'admin' }).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await registry.request.post('/api/v1/projects').set('Authorization', gina).send({ name: 'ginas' }).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await registry.request.delete('/api/v1/projects/team-x').set('Authorization', gina).expect(403)), 'DENIED');
    // A private project the caller is not in does not exist for it.
    assert.equal(envelopeCode(await registry.request.get('/api/v1/projects/library').set('Authorization', gina).expect(404)), 'PROJECT_UNKNOWN');
    assert.deepEqual((await registry.request.get('/api/v1/projects/team-x/members').set('Authorization', gina).expect(200)).body.members, [
      { account: 'dana', role: 'developer' },
      { account: 'erin', role: 'guest' },
      { account: 'frank', role: 'guest' },
      { account: 'gina', role: 'admin' },
    ]);
  });

  it('a member removed while holding a token: the old token lasts its lifetime, the next one grants nothing', async () => {
    const held = await asUser('erin', ['repository:team-x/app:pull']);
    await registry.request.delete('/api/v1/projects/team-x/members/erin').set('Authorization', await asUser('gina')).expect(204);
    await registry.request.head('/v2/team-x/app/manifests/v1').set('Authorization', held).set('Accept', allManifestTypes).expect(200);
    assert.deepEqual(await grantedActions('erin', 'team-x/app'), []);
  });

  it('lists what each caller sees, pages it, and says who I am', async () => {
    const names = async (authorization: string | null, query = '') => {
      const call = registry.request.get(`/api/v1/projects${query}`);
      if (authorization) call.set('Authorization', authorization);
      return ((await call.expect(200)).body.projects as Array<{ name: string }>).map((project) => project.name);
    };
    assert.deepEqual(await names(await asUser('root')), ['library', 'pub', 'team-x']);
    assert.deepEqual(await names(await asUser('dana')), ['pub', 'team-x']);
    assert.deepEqual(await names(await asUser('erin')), ['pub']);
    const first = await registry.request.get('/api/v1/projects?n=1').set('Authorization', await asUser('root')).expect(200);
    assert.deepEqual(first.body.projects.map((project: { name: string }) => project.name), ['library']);
    assert.match(first.headers.link ?? '', /last=library/);
    assert.deepEqual(await names(await asUser('root'), '?q=ea'), ['team-x']);
    const pub = (await registry.request.get('/api/v1/projects/pub').set('Authorization', await asUser('erin')).expect(200)).body as { quota: { storage: number } };
    assert.equal(pub.quota.storage, 1_000_000);
    assert.deepEqual((await registry.request.get('/api/v1/me').set('Authorization', await asUser('dana')).expect(200)).body, { name: 'dana', admin: false, projects: [{ name: 'team-x', role: 'developer' }] });
  });

  it('refuses bad input with the reason and stores nothing', async () => {
    const root = await asUser('root', ['registry:admin:*']);
    const before = (await registry.request.get('/api/v1/projects').set('Authorization', root).expect(200)).body;
    assert.equal(envelopeCode(await registry.request.post('/api/v1/projects').set('Authorization', root).send({ name: 'Bad Name' }).expect(400)), 'REQUEST_INVALID');
    assert.equal(envelopeCode(await registry.request.post('/api/v1/projects').set('Authorization', root).send({ name: 'pub' }).expect(409)), 'CONFLICT');
    assert.equal(envelopeCode(await registry.request.post('/api/v1/projects').set('Authorization', root).send({ name: 'q', quota: { storage: -1 } }).expect(400)), 'PARAMETER_INVALID');
    assert.equal(envelopeCode(await registry.request.put('/api/v1/projects/team-x/members/dana').set('Authorization', root).send({ role: 'owner' }).expect(400)), 'PARAMETER_INVALID');
    assert.equal(envelopeCode(await registry.request.put('/api/v1/projects/team-x/members/nobody').set('Authorization', root).send({ role: 'guest' }).expect(404)), 'ACCOUNT_UNKNOWN');
    assert.equal(envelopeCode(await registry.request.put('/api/v1/projects/no-such/members/dana').set('Authorization', root).send({ role: 'guest' }).expect(404)), 'PROJECT_UNKNOWN');
    assert.deepEqual((await registry.request.get('/api/v1/projects').set('Authorization', root).expect(200)).body, before);
  });

  it('a project holding repositories is deleted only with force; its repositories then fall outside any project', async () => {
    const root = await asUser('root', ['registry:admin:*', 'registry:audit:*']);
    const refused = await registry.request.delete('/api/v1/projects/team-x').set('Authorization', root).expect(409);
    assert.equal(envelopeCode(refused), 'CONFLICT');
    assert.deepEqual(await grantedActions('frank', 'team-x/app'), ['pull']);
    await registry.request.delete('/api/v1/projects/team-x?force=true').set('Authorization', root).expect(204);
    assert.deepEqual(await grantedActions('frank', 'team-x/app'), ['delete', 'pull', 'push']);
    const events = (await registry.request.get('/api/v1/audit/events?target=project&n=100').set('Authorization', root).expect(200)).body.events as Array<{ action: string; actor: string; detail: { project: string } }>;
    const teamX = events.filter((event) => event.detail.project === 'team-x').map((event) => [event.action, event.actor]).reverse();
    assert.deepEqual(teamX, [
      ['created', 'root'],
      ['member-set', 'root'],
      ['member-set', 'root'],
      ['member-set', 'root'],
      ['member-set', 'gina'],
      ['member-removed', 'gina'],
      ['deleted', 'root'],
    ]);
  });
});

/** Robot accounts of a project, as a CI system uses them: `robot$<project>+<name>` with docker's token flow. */
describe('robots of projects', () => {
  let registry: TestRegistry;
  const clock = new ManualClock();
  const token = (name: string, secret: string, scopes: string[]) => fetchToken(registry.request, [name, secret], scopes);
  const actionsOf = (issued: string) => ((claimsOf(issued).access as Array<{ actions: string[] }>)[0]?.actions ?? []).sort();
  let root: string;
  let mia: string;

  before(async () => {
    registry = await createTestRegistry({ auth: { mode: 'token' }, clock });
    await registry.registry.services.accounts.create({ name: 'root', password: password('root'), admin: true }, bootstrap);
    root = `Bearer ${await fetchToken(registry.request, ['root', password('root')], ['registry:admin:*'])}`;
    for (const name of ['mia', 'dev']) await registry.request.post('/api/v1/accounts').set('Authorization', root).send({ name, password: password(name) }).expect(201);
    for (const project of ['ci', 'other']) await registry.request.post('/api/v1/projects').set('Authorization', root).send({ name: project }).expect(201);
    await registry.request.put('/api/v1/projects/ci/members/mia').set('Authorization', root).send({ role: 'maintainer' }).expect(200);
    await registry.request.put('/api/v1/projects/ci/members/dev').set('Authorization', root).send({ role: 'developer' }).expect(200);
    mia = `Bearer ${await fetchToken(registry.request, ['mia', password('mia')], [])}`;
  });
  after(async () => {
    await registry.close();
  });

  it('a maintainer makes a robot whose secret is shown once; it pushes where its globs reach and nowhere else', async () => {
    const made = await registry.request
      .post('/api/v1/projects/ci/robots')
      .set('Authorization', mia)
      .send({ name: 'builder', access: [{ repositories: ['app', 'tools/*'], actions: ['pull', 'push'] }], expiresIn: '30d' })
      .expect(201);
    assert.equal(made.body.name, 'robot$ci+builder');
    assert.equal(typeof made.body.secret, 'string');
    assert.equal(made.body.expiresAt, new Date(clock.now() + 30 * 24 * 3_600_000).toISOString());
    const listed = await registry.request.get('/api/v1/projects/ci/robots').set('Authorization', mia).expect(200);
    assert.deepEqual(listed.body.robots.map((robot: { name: string }) => robot.name), ['robot$ci+builder']);
    assert.ok(!JSON.stringify(listed.body).includes(made.body.secret) && !JSON.stringify(listed.body).includes('$2'), 'the secret is never shown again, nor its hash');
    const secret = made.body.secret as string;
    assert.deepEqual(actionsOf(await token('robot$ci+builder', secret, ['repository:ci/app:pull,push,delete'])), ['pull', 'push']);
    assert.deepEqual(actionsOf(await token('robot$ci+builder', secret, ['repository:ci/tools/lint:pull,push'])), ['pull', 'push']);
    assert.deepEqual(actionsOf(await token('robot$ci+builder', secret, ['repository:ci/secret:pull'])), []);
    assert.deepEqual(actionsOf(await token('robot$ci+builder', secret, ['repository:other/app:pull'])), [], 'never outside its project');
    assert.deepEqual(actionsOf(await token('robot$ci+builder', secret, ['repository:elsewhere/app:pull,push'])), [], 'nor outside projects');
    const push = await token('robot$ci+builder', secret, ['repository:ci/app:pull,push']);
    await pushManifest(registry.request.set('Authorization', `Bearer ${push}`), 'ci/app', 'v1', imageManifest());
    const events = JSON.stringify((await registry.request.get('/api/v1/audit/events?target=project&n=50').set('Authorization', `Bearer ${await fetchToken(registry.request, ['root', password('root')], ['registry:audit:*'])}`).expect(200)).body);
    assert.ok(events.includes('robot-created') && !events.includes(secret), 'the creation is recorded, without the secret');
  });

  it('no escalation: a developer cannot make robots, a robot manages nothing', async () => {
    const dev = `Bearer ${await fetchToken(registry.request, ['dev', password('dev')], [])}`;
    assert.equal(envelopeCode(await registry.request.post('/api/v1/projects/ci/robots').set('Authorization', dev).send({ name: 'mine', access: [{ repositories: ['**'], actions: ['push'] }] }).expect(403)), 'DENIED');
    const robot = await registry.request.post('/api/v1/projects/ci/robots').set('Authorization', mia).send({ name: 'sneaky', access: [{ repositories: ['**'], actions: ['pull'] }] }).expect(201);
    const asRobot = `Bearer ${await token('robot$ci+sneaky', robot.body.secret as string, ['registry:admin:*'])}`;
    assert.equal(envelopeCode(await registry.request.post('/api/v1/accounts').set('Authorization', asRobot).send({ name: 'evil', password: 'evil-password-1' }).expect(403)), 'DENIED');
    // A robot is no member: its own project is as unknown to the management API as any private one.
    assert.equal(envelopeCode(await registry.request.post('/api/v1/projects/ci/robots').set('Authorization', asRobot).send({ name: 'spawn', access: [{ repositories: ['**'], actions: ['push'] }] }).expect(404)), 'PROJECT_UNKNOWN');
    assert.equal(envelopeCode(await registry.request.put('/api/v1/projects/ci/members/dev').set('Authorization', asRobot).send({ role: 'admin' }).expect(404)), 'PROJECT_UNKNOWN');
    assert.deepEqual((await registry.request.get('/api/v1/me').set('Authorization', asRobot).expect(200)).body, { name: 'robot$ci+sneaky', admin: false, projects: [] });
    assert.deepEqual((await registry.request.get('/api/v1/projects/ci/robots').set('Authorization', mia).expect(200)).body.robots.map((entry: { name: string }) => entry.name), ['robot$ci+builder', 'robot$ci+sneaky']);
    assert.equal((await registry.request.get('/api/v1/projects/ci/members').set('Authorization', mia).expect(200)).body.members.find((member: { account: string }) => member.account === 'dev').role, 'developer');
    assert.equal(envelopeCode(await registry.request.post('/api/v1/projects/ci/robots').set('Authorization', mia).send({ name: 'bad', access: [{ repositories: ['**'], actions: ['own'] }] }).expect(400)), 'REQUEST_INVALID');
    assert.equal(envelopeCode(await registry.request.post('/api/v1/projects/ci/robots').set('Authorization', mia).send({ name: 'sneaky', access: [{ repositories: ['**'], actions: ['pull'] }] }).expect(409)), 'CONFLICT');
  });

  it('an expired, disabled, refreshed or deleted robot: sign-in refused, a held token refused when it may no longer act', async () => {
    const made = await registry.request.post('/api/v1/projects/ci/robots').set('Authorization', mia).send({ name: 'nightly', access: [{ repositories: ['app'], actions: ['pull'] }], expiresIn: '1h' }).expect(201);
    const secret = made.body.secret as string;
    const held = `Bearer ${await token('robot$ci+nightly', secret, ['repository:ci/app:pull'])}`;
    await registry.request.head('/v2/ci/app/manifests/v1').set('Authorization', held).set('Accept', allManifestTypes).expect(200);
    clock.advance(2 * 3_600_000);
    await registry.request.head('/v2/ci/app/manifests/v1').set('Authorization', held).set('Accept', allManifestTypes).expect(401);
    await registry.request.get('/auth/token?service=registry').set('Authorization', `Basic ${Buffer.from(`robot$ci+nightly:${secret}`).toString('base64')}`).expect(401);

    const kept = await registry.request.post('/api/v1/projects/ci/robots').set('Authorization', mia).send({ name: 'deployer', access: [{ repositories: ['app'], actions: ['pull'] }] }).expect(201);
    assert.equal(kept.body.expiresAt, null, 'without expiresIn it never expires');
    const first = kept.body.secret as string;
    const refreshed = await registry.request.patch('/api/v1/projects/ci/robots/deployer').set('Authorization', mia).send({ refresh: true }).expect(200);
    const second = refreshed.body.secret as string;
    assert.notEqual(second, first);
    await registry.request.get('/auth/token?service=registry').set('Authorization', `Basic ${Buffer.from(`robot$ci+deployer:${first}`).toString('base64')}`).expect(401);
    const live = `Bearer ${await token('robot$ci+deployer', second, ['repository:ci/app:pull'])}`;
    await registry.request.patch('/api/v1/projects/ci/robots/robot$ci+deployer').set('Authorization', mia).send({ disabled: true }).expect(200);
    await registry.request.head('/v2/ci/app/manifests/v1').set('Authorization', live).set('Accept', allManifestTypes).expect(401);
    await registry.request.delete('/api/v1/projects/ci/robots/deployer').set('Authorization', mia).expect(204);
    await registry.request.get('/auth/token?service=registry').set('Authorization', `Basic ${Buffer.from(`robot$ci+deployer:${second}`).toString('base64')}`).expect(401);

    const temporary = await registry.request.post('/api/v1/projects/ci/robots').set('Authorization', mia).send({ name: 'temporary', access: [{ repositories: ['app'], actions: ['pull'] }] }).expect(201);
    const heldByDeleted = `Bearer ${await token('robot$ci+temporary', temporary.body.secret as string, ['repository:ci/app:pull'])}`;
    await registry.request.head('/v2/ci/app/manifests/v1').set('Authorization', heldByDeleted).set('Accept', allManifestTypes).expect(200);
    await registry.request.delete('/api/v1/projects/ci/robots/robot$ci+temporary').set('Authorization', mia).expect(204);
    await registry.request.head('/v2/ci/app/manifests/v1').set('Authorization', heldByDeleted).set('Accept', allManifestTypes).expect(401);
  });
});

describe('secrets never reach the logs', () => {
  it('passwords, robot secrets and tokens of a whole story appear in no log line', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const registry = await createTestRegistry({ auth: { mode: 'token' }, logger: pino({ level: 'debug' }, sink) });
    try {
      await registry.registry.services.accounts.create({ name: 'root', password: password('root'), admin: true }, bootstrap);
      const rootToken = await fetchToken(registry.request, ['root', password('root')], ['registry:admin:*']);
      const root = `Bearer ${rootToken}`;
      await registry.request.post('/api/v1/accounts').set('Authorization', root).send({ name: 'lena', password: password('lena') }).expect(201);
      await registry.request.patch('/api/v1/accounts/lena').set('Authorization', root).send({ password: 'lena-password-2' }).expect(200);
      await registry.request.post('/api/v1/projects').set('Authorization', root).send({ name: 'ops' }).expect(201);
      const robot = await registry.request.post('/api/v1/projects/ops/robots').set('Authorization', root).send({ name: 'ci', access: [{ repositories: ['**'], actions: ['pull'] }] }).expect(201);
      const refreshed = await registry.request.patch('/api/v1/projects/ops/robots/ci').set('Authorization', root).send({ refresh: true }).expect(200);
      await registry.request.get('/auth/token?service=registry').set('Authorization', `Basic ${Buffer.from(`robot$ops+ci:${robot.body.secret as string}`).toString('base64')}`).expect(401);
      const robotToken = await fetchToken(registry.request, ['robot$ops+ci', refreshed.body.secret as string], ['repository:ops/app:pull']);
      await registry.request.get('/auth/token?service=registry').set('Authorization', `Basic ${Buffer.from('lena:wrong-password').toString('base64')}`).expect(401);
      assert.ok(lines.length > 5, 'the story was logged');
      const logged = lines.join('');
      for (const secret of [password('root'), password('lena'), 'lena-password-2', 'wrong-password', robot.body.secret as string, refreshed.body.secret as string, rootToken, robotToken]) {
        assert.ok(!logged.includes(secret), `a secret reached the logs: ${secret.slice(0, 6)}…`);
      }
    } finally {
      await registry.close();
    }
  });
});
