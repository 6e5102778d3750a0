import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { DatabaseAccounts } from '../../src/auth/database-accounts.js';
import { basic, fetchToken, writeTestPolicy } from '../helpers/auth.js';
import { imageManifest, pushManifest } from '../helpers/images.js';
import { envelopeCode } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const bootstrap = { actor: 'system$command-line', authMethod: 'system', address: null, userAgent: null, requestId: null };

/**
 * Accounts of the metadata database beside the policy file: the first system admin made as
 * `registry accounts create` makes it, then managed over /api/v1/accounts with docker's token flow.
 */
describe('accounts of the database: a system admin, self-service passwords, disabled accounts', () => {
  let registry: TestRegistry;
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  const root: [string, string] = ['root', 'root-password-1'];
  before(async () => {
    files = await writeTestPolicy();
    registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
    await registry.registry.services.accounts.create({ name: root[0], password: root[1], admin: true }, bootstrap);
  });
  after(async () => {
    await registry.close();
    await rm(files.directory, { recursive: true, force: true });
  });

  const adminToken = () => fetchToken(registry.request, root, ['registry:admin:*']);
  const accountsNow = async () => (await registry.registry.services.accounts.list()).map((account) => account.name);

  it('a system admin may do everything the policy file gives nobody: push anywhere, manage accounts', async () => {
    const push = await fetchToken(registry.request, root, ['repository:elsewhere/app:pull,push']);
    await pushManifest(registry.request.set('Authorization', `Bearer ${push}`), 'elsewhere/app', 'v1', imageManifest());
    const token = await adminToken();
    const created = await registry.request.post('/api/v1/accounts').set('Authorization', `Bearer ${token}`).send({ name: 'dana', password: 'dana-password-1' }).expect(201);
    assert.deepEqual({ ...created.body, createdAt: undefined, updatedAt: undefined }, { name: 'dana', admin: false, disabled: false, createdAt: undefined, updatedAt: undefined });
    const listed = await registry.request.get('/api/v1/accounts').set('Authorization', `Bearer ${token}`).expect(200);
    assert.deepEqual(listed.body.accounts.map((account: { name: string }) => account.name), ['dana', 'root']);
    assert.ok(!JSON.stringify(listed.body).includes('$2'), 'no password hash is ever shown');
  });

  it('refuses bad accounts with the reason, and stores nothing', async () => {
    const token = await adminToken();
    const before = await accountsNow();
    const post = (body: unknown) => registry.request.post('/api/v1/accounts').set('Authorization', `Bearer ${token}`).send(body as object);
    assert.equal(envelopeCode(await post({ name: 'dana', password: 'another-password' }).expect(409)), 'CONFLICT');
    assert.equal(envelopeCode(await post({ name: 'Dana!', password: 'dana-password-1' }).expect(400)), 'REQUEST_INVALID');
    assert.equal(envelopeCode(await post({ name: 'robot$sneaky', password: 'dana-password-1' }).expect(400)), 'REQUEST_INVALID');
    assert.equal(envelopeCode(await post({ name: 'erin', password: 'short' }).expect(400)), 'REQUEST_INVALID');
    assert.equal(envelopeCode(await post({ name: 'erin', password: 'erin-password-1', role: 'admin' }).expect(400)), 'PARAMETER_INVALID');
    assert.equal(envelopeCode(await post({ name: 'erin', password: 'erin-password-1', admin: 'yes' }).expect(400)), 'PARAMETER_INVALID');
    assert.equal(envelopeCode(await registry.request.patch('/api/v1/accounts/nobody').set('Authorization', `Bearer ${token}`).send({ disabled: true }).expect(404)), 'ACCOUNT_UNKNOWN');
    assert.deepEqual(await accountsNow(), before);
  });

  it('no escalation: an account changes its own password and nothing else, and may not manage others', async () => {
    const dana: [string, string] = ['dana', 'dana-password-1'];
    // dana asks for the admin grant: her token comes without it.
    const token = await fetchToken(registry.request, dana, ['registry:admin:*']);
    const as = (call: ReturnType<typeof registry.request.patch>) => call.set('Authorization', `Bearer ${token}`);
    assert.equal(envelopeCode(await as(registry.request.patch('/api/v1/accounts/dana')).send({ admin: true }).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await as(registry.request.patch('/api/v1/accounts/root')).send({ password: 'taken-over-1' }).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await as(registry.request.post('/api/v1/accounts')).send({ name: 'mallory', password: 'mallory-password' }).expect(403)), 'DENIED');
    assert.equal(envelopeCode(await registry.request.delete('/api/v1/accounts/root').set('Authorization', `Bearer ${token}`).expect(403)), 'DENIED');
    assert.equal((await registry.registry.services.accounts.get('dana')).admin, false);

    await as(registry.request.patch('/api/v1/accounts/dana')).send({ password: 'dana-password-2' }).expect(200);
    await registry.request.get('/auth/token?service=registry').set('Authorization', basic('dana', 'dana-password-1')).expect(401);
    await fetchToken(registry.request, ['dana', 'dana-password-2'], []);
    // The files' accounts are the files': the API does not know them.
    assert.equal(envelopeCode(await registry.request.patch('/api/v1/accounts/alice').set('Authorization', `Bearer ${await adminToken()}`).send({ disabled: true }).expect(404)), 'ACCOUNT_UNKNOWN');
  });

  it('a disabled account cannot sign in, and the token it holds is refused at once', async () => {
    const dana: [string, string] = ['dana', 'dana-password-2'];
    const held = await fetchToken(registry.request, dana, ['repository:public/app:pull']);
    await registry.request.get('/v2/').set('Authorization', `Bearer ${held}`).expect(200);
    await registry.request.patch('/api/v1/accounts/dana').set('Authorization', `Bearer ${await adminToken()}`).send({ disabled: true }).expect(200);
    const refused = await registry.request.get('/v2/').set('Authorization', `Bearer ${held}`).expect(401);
    assert.match(refused.headers['www-authenticate'] ?? '', /error="invalid_token"/);
    await registry.request.get('/auth/token?service=registry').set('Authorization', basic(...dana)).expect(401);
    await registry.request.patch('/api/v1/accounts/dana').set('Authorization', `Bearer ${await adminToken()}`).send({ disabled: false }).expect(200);
    await registry.request.get('/v2/').set('Authorization', `Bearer ${held}`).expect(200);
  });

  it('every change is an audit event with who, from where, before and after, and never a secret', async () => {
    const token = await fetchToken(registry.request, root, ['registry:admin:*', 'registry:audit:*']);
    await registry.request.delete('/api/v1/accounts/dana').set('Authorization', `Bearer ${token}`).expect(204);
    const events = (await registry.request.get('/api/v1/audit/events?target=account&n=50').set('Authorization', `Bearer ${token}`).expect(200)).body.events as Array<{
      action: string;
      actor: string;
      detail: { account: string; before: unknown; after: unknown; password?: string };
    }>;
    const seen = events
      .map((event) => {
        const { detail } = event;
        return [event.action, event.actor, detail.account, detail.before, detail.after, detail.password];
      })
      .reverse();
    assert.deepEqual(
      seen,
      [
        ['created', 'system$command-line', 'root', null, { admin: true, disabled: false }, 'set'],
        ['created', 'root', 'dana', null, { admin: false, disabled: false }, 'set'],
        ['changed', 'dana', 'dana', { admin: false, disabled: false }, { admin: false, disabled: false }, 'set'],
        ['changed', 'root', 'dana', { admin: false, disabled: false }, { admin: false, disabled: true }, undefined],
        ['changed', 'root', 'dana', { admin: false, disabled: true }, { admin: false, disabled: false }, undefined],
        ['deleted', 'root', 'dana', { admin: false, disabled: false }, null, undefined],
      ],
    );
    const text = JSON.stringify(events);
    for (const secret of ['dana-password-1', 'dana-password-2', 'root-password-1', '$2a$', '$2b$']) assert.ok(!text.includes(secret), `no ${secret} in the events`);
  });

  it('another replica sees a change of an account at its next check', async () => {
    const other = new DatabaseAccounts(registry.metadata.db);
    await other.load();
    assert.equal(other.current.get('erin'), undefined);
    await registry.registry.services.accounts.create({ name: 'erin', password: 'erin-password-1' }, bootstrap);
    assert.equal(await other.refresh(), true, 'the directory version moved');
    assert.equal(other.current.get('erin')?.admin, false);
    assert.equal(await other.refresh(), false, 'nothing moved since');
  });
});

describe('accounts of the database in htpasswd mode (HTTP Basic on every request)', () => {
  let registry: TestRegistry;
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  before(async () => {
    files = await writeTestPolicy();
    registry = await createTestRegistry({ auth: { mode: 'htpasswd', htpasswd: { path: files.htpasswd } } });
    await registry.registry.services.accounts.create({ name: 'admin', password: 'admin-password-1', admin: true }, bootstrap);
  });
  after(async () => {
    await registry.close();
    await rm(files.directory, { recursive: true, force: true });
  });

  it('signs in with Basic, manages accounts as an admin only, and stops a disabled account at its next request', async () => {
    const asAdmin = basic('admin', 'admin-password-1');
    await registry.request.post('/api/v1/accounts').set('Authorization', asAdmin).send({ name: 'frank', password: 'frank-password-1' }).expect(201);
    const asFrank = basic('frank', 'frank-password-1');
    await registry.request.get('/v2/').set('Authorization', asFrank).expect(200);
    // No policy file: a signed-in account may push, as before there were accounts in the database.
    await pushManifest(registry.request.set('Authorization', asFrank), 'frank/app', 'v1', imageManifest());
    assert.equal(envelopeCode(await registry.request.post('/api/v1/accounts').set('Authorization', asFrank).send({ name: 'gina', password: 'gina-password-1' }).expect(403)), 'DENIED');
    await registry.request.patch('/api/v1/accounts/frank').set('Authorization', asFrank).send({ password: 'frank-password-2' }).expect(200);
    await registry.request.get('/v2/').set('Authorization', asFrank).expect(401);
    const renewed = basic('frank', 'frank-password-2');
    await registry.request.get('/v2/').set('Authorization', renewed).expect(200);
    await registry.request.patch('/api/v1/accounts/frank').set('Authorization', asAdmin).send({ disabled: true }).expect(200);
    await registry.request.get('/v2/').set('Authorization', renewed).expect(401);
  });
});
