import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import jwt from 'jsonwebtoken';
import pino from 'pino';
import { libtrustKeyId } from '../../src/auth/keys.js';
import { testBlob } from '../helpers/blobs.js';
import { basic, claimsOf, fetchToken, headerOf, passwords, writeTestPolicy } from '../helpers/auth.js';
import { imageManifest, ociManifestType, pushManifest } from '../helpers/images.js';
import { envelopeCode, errorMessage } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

const alice: [string, string] = ['alice', passwords.alice];
const bob: [string, string] = ['bob', passwords.bob];
const robot: [string, string] = ['robot$ci', passwords.robot];

describe('token auth: the built-in token service', () => {
  let registry: TestRegistry;
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  const logLines: Array<Record<string, unknown>> = [];
  before(async () => {
    files = await writeTestPolicy();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
        callback();
      },
    });
    registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy, htpasswd: { path: files.htpasswd } }, logger: pino({ level: 'info' }, sink) });
  });
  after(async () => {
    await registry.close();
    await rm(files.directory, { recursive: true, force: true });
  });

  it('a refusal of a valid token names the account and what it lacks, in the answer docker prints and in the request log', async () => {
    const token = await fetchToken(registry.request, bob, ['repository:team-a/web:pull,push']);
    const refused = await registry.request
      .post('/v2/team-a/web/blobs/uploads/')
      .set('Authorization', `Bearer ${token}`)
      .set('X-Request-Id', 'refused-bob-1')
      .expect(403);
    assert.equal(envelopeCode(refused), 'DENIED');
    assert.equal(errorMessage(refused), 'bob is not granted repository:team-a/web:push');
    assert.deepEqual((refused.body as { errors: Array<{ detail: unknown }> }).errors[0]!.detail, {
      account: 'bob',
      missing: [{ type: 'repository', name: 'team-a/web', actions: ['push'] }],
    });
    const line = logLines.find((entry) => entry.requestId === 'refused-bob-1' && entry.msg === 'request');
    assert.ok(line, 'the request was logged');
    assert.equal(line.user, 'bob', 'the account whose credentials were valid');
    assert.equal(line.refused, 'bob is not granted repository:team-a/web:push');
    assert.equal(line.status, 403);
  });

  it('GET /auth/token with Basic credentials signs the granted scope with the claims the spec names', async () => {
    const response = await registry.request
      .get('/auth/token?service=registry&scope=repository:team-a/app:push,pull&account=alice')
      .set('Authorization', basic(...alice))
      .expect(200);
    const body = response.body as { token: string; access_token: string; expires_in: number; issued_at: string };
    assert.equal(body.access_token, body.token);
    assert.equal(body.expires_in, 300);
    assert.ok(Math.abs(Date.parse(body.issued_at) - Date.now()) < 10_000);
    assert.equal(response.headers['cache-control'], 'no-store');
    const header = headerOf(body.token);
    assert.equal(header.alg, 'ES256');
    assert.match(String(header.kid), /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    const claims = claimsOf(body.token);
    assert.equal(claims.iss, 'registry-token-service');
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, 'registry');
    assert.equal(Number(claims.exp) - Number(claims.iat), 300);
    assert.equal(claims.nbf, claims.iat);
    assert.match(String(claims.jti), /^[0-9a-f-]{36}$/);
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'team-a/app', actions: ['push', 'pull'] }]);
  });

  it('keeps the signing key under the storage directory with mode 0600, and across restarts', async () => {
    const keyFile = path.join(registry.root, 'auth', 'token-signing-key.pem');
    const { mode } = await import('node:fs/promises').then((fs) => fs.stat(keyFile));
    assert.equal(mode & 0o777, 0o600);
    const token = await fetchToken(registry.request, alice, []);
    await registry.restart();
    await registry.request.get('/v2/').set('Authorization', `Bearer ${token}`).expect(200);
  });

  it('grants only the intersection of what was asked and what the rules allow, for every scope shape', async () => {
    const access = async (credentials: [string, string] | null, scopes: string[]) => claimsOf(await fetchToken(registry.request, credentials, scopes)).access;
    assert.deepEqual(await access(alice, ['repository:team-a/app:pull,push', 'repository:team-b/x:pull']), [
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'team-b/x', actions: [] },
    ]);
    assert.deepEqual(await access(alice, ['repository:team-a/app:pull repository:team-a/other:push']), [
      { type: 'repository', name: 'team-a/app', actions: ['pull'] },
      { type: 'repository', name: 'team-a/other', actions: ['push'] },
    ], 'several scopes in one value, space separated');
    assert.deepEqual(await access(alice, ['repository:team-a/app:*']), [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }]);
    assert.deepEqual(await access(bob, ['repository:team-a/app:pull,push,delete']), [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    assert.deepEqual(await access(alice, []), [], 'no scope: a login');
    assert.deepEqual(await access(alice, ['repository(plugin):team-a/app:pull']), [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    assert.deepEqual(await access(alice, ['repository:127.0.0.1:5000/team-a/app:pull']), [
      { type: 'repository', name: '127.0.0.1:5000/team-a/app', actions: [] },
    ]);
    assert.deepEqual(await access(alice, ['registry:catalog:*']), [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    assert.deepEqual(await access(bob, ['registry:catalog:*']), [{ type: 'registry', name: 'catalog', actions: [] }]);
    assert.deepEqual(await access(robot, ['repository:team-b/build:push,pull']), [{ type: 'repository', name: 'team-b/build', actions: ['push', 'pull'] }]);
    assert.deepEqual(await access(['carol', passwords.carol], ['repository:team-a/app:pull,push']), [
      { type: 'repository', name: 'team-a/app', actions: ['pull'] },
    ], 'an htpasswd user with groups from the policy');
    assert.deepEqual(await access(null, ['repository:public/tools:pull,push', 'repository:team-a/app:pull']), [
      { type: 'repository', name: 'public/tools', actions: ['pull'] },
      { type: 'repository', name: 'team-a/app', actions: [] },
    ], 'anonymous');
    assert.equal(claimsOf(await fetchToken(registry.request, null, [])).sub, '');
  });

  it('wrong credentials get 401 and no token', async () => {
    for (const [user, password] of [['alice', 'wrong'], ['nobody', 'x'], ['robot$ci', 'wrong'], ['robot$none', passwords.robot], ['carol', passwords.alice]]) {
      const response = await registry.request.get('/auth/token?service=registry&scope=repository:team-a/app:pull').set('Authorization', basic(user!, password!)).expect(401);
      assert.equal(envelopeCode(response), 'UNAUTHORIZED', `${user}`);
      assert.equal((response.body as { token?: string }).token, undefined);
      assert.match(String(response.headers['www-authenticate']), /^Basic realm=/);
    }
    await registry.request.get('/auth/token?service=other').set('Authorization', basic(...alice)).expect(400);
  });

  it('POST /auth/token takes the OAuth2 password grant, gives a refresh token when offline, and refreshes', async () => {
    const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
    const first = await registry.request
      .post('/auth/token')
      .type('form')
      .send(form({ grant_type: 'password', username: 'alice', password: passwords.alice, client_id: 'docker', access_type: 'offline', service: 'registry', scope: 'repository:team-a/app:pull' }))
      .expect(200);
    const { access_token: accessToken, refresh_token: refreshToken } = first.body as { access_token: string; refresh_token: string };
    assert.deepEqual(claimsOf(accessToken).access, [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    assert.ok(refreshToken);
    const refreshed = await registry.request
      .post('/auth/token')
      .type('form')
      .send(form({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'docker', service: 'registry', scope: 'repository:team-a/app:pull,push' }))
      .expect(200);
    assert.deepEqual(claimsOf((refreshed.body as { access_token: string }).access_token).access, [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]);
    const noOffline = await registry.request.get('/auth/token?service=registry').set('Authorization', basic(...alice)).expect(200);
    assert.equal((noOffline.body as { refresh_token?: string }).refresh_token, undefined);
    const withOffline = await registry.request.get('/auth/token?service=registry&offline_token=true&client_id=docker').set('Authorization', basic(...alice)).expect(200);
    assert.ok((withOffline.body as { refresh_token?: string }).refresh_token);

    await registry.request.post('/auth/token').type('form').send(form({ grant_type: 'password', username: 'alice', password: 'wrong', client_id: 'docker' })).expect(401);
    await registry.request.post('/auth/token').type('form').send(form({ grant_type: 'refresh_token', refresh_token: accessToken, client_id: 'docker' })).expect(401);
    await registry.request.post('/auth/token').type('form').send(form({ grant_type: 'client_credentials' })).expect(400);
    // A refresh token is not an access token.
    const asBearer = await registry.request.get('/v2/').set('Authorization', `Bearer ${refreshToken}`).expect(401);
    assert.match(String(asBearer.headers['www-authenticate']), /error="invalid_token"/);
  });

  it('logs the user of each request, never a password or token', async () => {
    const token = await fetchToken(registry.request, alice, ['repository:team-a/app:pull']);
    const requestId = randomUUID();
    await registry.request.get('/v2/').set('Authorization', `Bearer ${token}`).set('X-Request-Id', requestId).expect(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const line = logLines.find((entry) => entry.requestId === requestId);
    assert.equal(line?.user, 'alice');
    const all = JSON.stringify(logLines);
    assert.ok(!all.includes(passwords.alice) && !all.includes(token), 'no secret in the log');
  });
});

describe('token auth: the registry side', () => {
  let registry: TestRegistry;
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  let signingKey: string;
  let kid: string;
  before(async () => {
    files = await writeTestPolicy();
    registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
    await fetchToken(registry.request, alice, []);
    signingKey = await readFile(path.join(registry.root, 'auth', 'token-signing-key.pem'), 'utf8');
    kid = String(headerOf(await fetchToken(registry.request, alice, [])).kid);
  });
  after(async () => {
    await registry.close();
    await rm(files.directory, { recursive: true, force: true });
  });

  const bearer = (token: string) => `Bearer ${token}`;
  const now = () => Math.floor(Date.now() / 1000);
  const forged = (claims: Record<string, unknown>, options: jwt.SignOptions = {}, key: string = signingKey) => {
    const payload: Record<string, unknown> = {
      iss: 'registry-token-service',
      aud: 'registry',
      sub: 'alice',
      iat: now(),
      exp: now() + 300,
      access: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }],
      ...claims,
    };
    for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
    return jwt.sign(payload, key, { algorithm: 'ES256', keyid: kid, ...options });
  };
  async function nothingStored(): Promise<void> {
    const counts = await registry.rowCounts();
    assert.equal(counts.uploads, 0);
    assert.equal(counts.blobs, 0);
    assert.deepEqual((await registry.storedFiles()).filter((file) => !file.startsWith('auth/')), []);
  }

  it('without a token: 401 with a Bearer challenge naming realm, service and the scope needed; nothing stored', async () => {
    const base = await registry.request.get('/v2/').expect(401);
    assert.equal(envelopeCode(base), 'UNAUTHORIZED');
    assert.match(String(base.headers['www-authenticate']), /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token",service="registry"$/);
    const pull = await registry.request.get('/v2/team-a/app/manifests/latest').expect(401);
    assert.match(String(pull.headers['www-authenticate']), /,scope="repository:team-a\/app:pull"$/);
    const push = await registry.request.post('/v2/team-a/app/blobs/uploads/').expect(401);
    assert.match(String(push.headers['www-authenticate']), /,scope="repository:team-a\/app:pull,push"$/);
    const remove = await registry.request.delete(`/v2/team-a/app/manifests/${testBlob(1).digest}`).expect(401);
    assert.match(String(remove.headers['www-authenticate']), /,scope="repository:team-a\/app:delete"$/);
    const catalog = await registry.request.get('/v2/_catalog').expect(401);
    assert.match(String(catalog.headers['www-authenticate']), /,scope="registry:catalog:\*"$/);
    const blob = testBlob(1000);
    await registry.request.post(`/v2/team-a/app/blobs/uploads/?digest=${blob.digest}`).type('application/octet-stream').send(blob.bytes).expect(401);
    await nothingStored();
  });

  it('accepts a valid token: GET /v2/ 200, push and pull within the granted scope', async () => {
    const token = await fetchToken(registry.request, alice, ['repository:team-a/app:pull,push']);
    await registry.request.get('/v2/').set('Authorization', bearer(token)).expect(200);
    const blob = testBlob(2000);
    const started = await registry.request.post('/v2/team-a/app/blobs/uploads/').set('Authorization', bearer(token)).expect(202);
    const location = started.headers.location as string;
    await registry.request.patch(location).set('Authorization', bearer(token)).type('application/octet-stream').send(blob.bytes).expect(202);
    await registry.request.put(`${location}?digest=${blob.digest}`).set('Authorization', bearer(token)).expect(201);
    await registry.request.head(`/v2/team-a/app/blobs/${blob.digest}`).set('Authorization', bearer(token)).expect(200);
    // A token within the 60 s leeway past its expiry still counts.
    await registry.request.get('/v2/').set('Authorization', bearer(forged({ exp: now() - 30, iat: now() - 330 }))).expect(200);
  });

  const rejected: Array<[string, () => string]> = [
    ['expired', () => forged({ exp: now() - 120, iat: now() - 420 })],
    ['not yet valid', () => forged({ nbf: now() + 120 })],
    ['without an expiry', () => forged({ exp: undefined })],
    ['for another audience', () => forged({ aud: 'other-registry' })],
    ['from another issuer', () => forged({ iss: 'someone-else' })],
    ['signed by another key under the same kid', () => forged({}, {}, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())],
    ['with alg none', () => `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT', kid })).toString('base64url')}.${Buffer.from(JSON.stringify(claimsOf(forged({})))).toString('base64url')}.`],
    ['HS256 signed with the public key', () => {
      const publicPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      return forged({}, { algorithm: 'HS256' }, publicPem);
    }],
    ['naming an unknown key', () => forged({}, { keyid: 'AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA' })],
    ['garbage', () => 'not.a.jwt'],
  ];
  for (const [what, token] of rejected) {
    it(`refuses a token ${what}: 401 invalid_token, nothing stored`, async () => {
      const blob = testBlob(500);
      const response = await registry.request
        .post(`/v2/team-a/app/blobs/uploads/?digest=${blob.digest}`)
        .set('Authorization', bearer(token()))
        .type('application/octet-stream')
        .send(blob.bytes)
        .expect(401);
      assert.equal(envelopeCode(response), 'UNAUTHORIZED');
      assert.match(String(response.headers['www-authenticate']), /error="invalid_token"/);
      await registry.request.get('/v2/').set('Authorization', bearer(token())).expect(401);
    });
  }

  it('HS256 with the registry\'s own public key as the secret is refused too', async () => {
    const token = await fetchToken(registry.request, alice, []);
    assert.ok(token);
    const { createPublicKey } = await import('node:crypto');
    const publicPem = createPublicKey(signingKey).export({ type: 'spki', format: 'pem' }).toString();
    assert.equal(libtrustKeyId(createPublicKey(signingKey)), kid);
    const hs = forged({}, { algorithm: 'HS256' }, publicPem);
    await registry.request.get('/v2/').set('Authorization', bearer(hs)).expect(401);
  });

  it('a token for another repository: 401 insufficient_scope with the scope needed', async () => {
    const token = await fetchToken(registry.request, alice, ['repository:team-a/other:pull']);
    const response = await registry.request.get('/v2/team-a/app/tags/list').set('Authorization', bearer(token)).expect(401);
    assert.match(String(response.headers['www-authenticate']), /scope="repository:team-a\/app:pull",error="insufficient_scope"$/);
  });

  it('a pull-only token cannot push: 403 DENIED, nothing stored', async () => {
    const fresh = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
    try {
      const token = await fetchToken(fresh.request, bob, ['repository:team-a/app:pull,push']);
      assert.deepEqual(claimsOf(token).access, [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
      const blob = testBlob(700);
      const post = await fresh.request.post(`/v2/team-a/app/blobs/uploads/?digest=${blob.digest}`).set('Authorization', bearer(token)).type('application/octet-stream').send(blob.bytes).expect(403);
      assert.equal(envelopeCode(post), 'DENIED');
      const manifest = imageManifest();
      const put = await fresh.request.put('/v2/team-a/app/manifests/latest').set('Authorization', bearer(token)).type(ociManifestType).send(manifest.bytes.toString()).expect(403);
      assert.equal(envelopeCode(put), 'DENIED');
      const counts = await fresh.rowCounts();
      assert.deepEqual([counts.uploads, counts.blobs, counts.repositories], [0, 0, 0]);
      assert.deepEqual((await fresh.storedFiles()).filter((file) => !file.startsWith('auth/')), []);
    } finally {
      await fresh.close();
    }
  });

  it('deleting needs delete: a pull,push token gets 403 and the manifest stays', async () => {
    const full = await fetchToken(registry.request, alice, ['repository:team-a/keep:pull,push,delete']);
    const manifest = imageManifest();
    const authorized = registry.request;
    for (const blob of manifest.blobs) {
      await authorized.post(`/v2/team-a/keep/blobs/uploads/?digest=${blob.digest}`).set('Authorization', bearer(full)).type('application/octet-stream').send(blob.bytes).expect(201);
    }
    await authorized.put('/v2/team-a/keep/manifests/v1').set('Authorization', bearer(full)).type(ociManifestType).send(manifest.bytes.toString()).expect(201);
    const pushOnly = await fetchToken(registry.request, alice, ['repository:team-a/keep:pull,push']);
    const denied = await registry.request.delete(`/v2/team-a/keep/manifests/${manifest.digest}`).set('Authorization', bearer(pushOnly)).expect(403);
    assert.equal(envelopeCode(denied), 'DENIED', 'a token issued for this repository without delete');
    const pullToken = await fetchToken(registry.request, bob, ['repository:team-a/keep:delete']);
    const forbidden = await registry.request.delete(`/v2/team-a/keep/manifests/${manifest.digest}`).set('Authorization', bearer(pullToken)).expect(403);
    assert.equal(envelopeCode(forbidden), 'DENIED');
    await registry.request.head('/v2/team-a/keep/manifests/v1').set('Authorization', bearer(full)).set('Accept', ociManifestType).expect(200);
    await registry.request.delete(`/v2/team-a/keep/manifests/${manifest.digest}`).set('Authorization', bearer(full)).expect(202);
  });

  it('a mount needs pull on the source, and is silently an upload without it', async () => {
    const aliceToken = await fetchToken(registry.request, alice, ['repository:team-a/source:pull,push']);
    const blob = testBlob(3000);
    await registry.request.post(`/v2/team-a/source/blobs/uploads/?digest=${blob.digest}`).set('Authorization', bearer(aliceToken)).type('application/octet-stream').send(blob.bytes).expect(201);
    // The robot may push team-b/** but not read team-a/**.
    const robotToken = await fetchToken(registry.request, robot, ['repository:team-b/x:pull,push', 'repository:team-a/source:pull']);
    const mount = await registry.request.post(`/v2/team-b/x/blobs/uploads/?mount=${blob.digest}&from=team-a/source`).set('Authorization', bearer(robotToken)).expect(202);
    assert.ok(mount.headers['docker-upload-uuid'], 'an upload session instead');
    await registry.request.head(`/v2/team-b/x/blobs/${blob.digest}`).set('Authorization', bearer(robotToken)).expect(404);
    const noFrom = await registry.request.post(`/v2/team-b/x/blobs/uploads/?mount=${blob.digest}`).set('Authorization', bearer(robotToken)).expect(202);
    assert.ok(noFrom.headers['docker-upload-uuid'], 'a mount naming no source is an upload when auth is on');
    // alice may read the source and write the target.
    const both = await fetchToken(registry.request, alice, ['repository:team-a/target:pull,push', 'repository:team-a/source:pull']);
    await registry.request.post(`/v2/team-a/target/blobs/uploads/?mount=${blob.digest}&from=team-a/source`).set('Authorization', bearer(both)).expect(201);
  });

  it('a mount\'s challenge names the source\'s pull too, so a client that asks for the challenge\'s scope can mount (as the OCI conformance suite does)', async () => {
    const aliceToken = await fetchToken(registry.request, alice, ['repository:team-a/origin:pull,push']);
    const blob = testBlob(2000);
    await registry.request.post(`/v2/team-a/origin/blobs/uploads/?digest=${blob.digest}`).set('Authorization', bearer(aliceToken)).type('application/octet-stream').send(blob.bytes).expect(201);
    const mountPath = `/v2/team-a/copy/blobs/uploads/?mount=${blob.digest}&from=team-a/origin`;
    const challenged = await registry.request.post(mountPath).expect(401);
    const scope = /,scope="([^"]+)"/.exec(String(challenged.headers['www-authenticate']))?.[1];
    assert.equal(scope, 'repository:team-a/copy:pull,push repository:team-a/origin:pull');
    const followed = await fetchToken(registry.request, alice, [scope!]);
    const mounted = await registry.request.post(mountPath).set('Authorization', bearer(followed)).expect(201);
    assert.equal(mounted.headers.location, `/v2/team-a/copy/blobs/${blob.digest}`);
    // Who may not read the source gets a token without it from the same challenge, and uploads instead.
    const robotChallenge = await registry.request.post(`/v2/team-b/copy/blobs/uploads/?mount=${blob.digest}&from=team-a/origin`).expect(401);
    const robotScope = /,scope="([^"]+)"/.exec(String(robotChallenge.headers['www-authenticate']))?.[1];
    const robotToken = await fetchToken(registry.request, robot, [robotScope!]);
    await registry.request.post(`/v2/team-b/copy/blobs/uploads/?mount=${blob.digest}&from=team-a/origin`).set('Authorization', bearer(robotToken)).expect(202);
    await registry.request.head(`/v2/team-b/copy/blobs/${blob.digest}`).set('Authorization', bearer(robotToken)).expect(404);
    // A source that is no valid name, or no mount at all, adds nothing to the challenge.
    for (const path of ['/v2/team-a/copy/blobs/uploads/?mount=x&from=Bad..Name', '/v2/team-a/copy/blobs/uploads/?from=team-a/origin']) {
      const plain = await registry.request.post(path).expect(401);
      assert.match(String(plain.headers['www-authenticate']), /,scope="repository:team-a\/copy:pull,push"$/, path);
    }
  });

  it('the catalog needs registry:catalog:*', async () => {
    const aliceToken = await fetchToken(registry.request, alice, ['registry:catalog:*']);
    await registry.request.get('/v2/_catalog').set('Authorization', bearer(aliceToken)).expect(200);
    const bobToken = await fetchToken(registry.request, bob, ['registry:catalog:*']);
    const denied = await registry.request.get('/v2/_catalog').set('Authorization', bearer(bobToken)).expect(403);
    assert.equal(envelopeCode(denied), 'DENIED');
  });

  it('anonymous tokens reach what the rules give anonymous, and nothing else', async () => {
    const token = await fetchToken(registry.request, null, ['repository:public/tools:pull', 'repository:team-a/app:pull']);
    await registry.request.get('/v2/public/tools/tags/list').set('Authorization', bearer(token)).expect(404);
    await registry.request.get('/v2/team-a/app/tags/list').set('Authorization', bearer(token)).expect(403);
  });

  it('ten failed logins of one account are refused for a while (429 with Retry-After), even with the right password; other accounts from that address still sign in', async () => {
    const fresh = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        await fresh.request.get('/auth/token?service=registry').set('Authorization', basic('alice', `guess-${attempt}`)).expect(401);
      }
      const blocked = await fresh.request.get('/auth/token?service=registry').set('Authorization', basic(...alice)).expect(429);
      assert.equal(envelopeCode(blocked), 'TOOMANYREQUESTS');
      assert.ok(Number(blocked.headers['retry-after']) > 0);
      assert.match(errorMessage(blocked), /too many failed logins of alice from this address; try again in \d+ s/);
      await fresh.request.get('/auth/token?service=registry').set('Authorization', basic(...bob)).expect(200);
    } finally {
      await fresh.close();
    }
  });
});

describe('token auth: pushing a whole image with a token', () => {
  it('an image pushed with one user\'s token is pulled back with another\'s', async () => {
    const files = await writeTestPolicy();
    const registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
    try {
      const push = await fetchToken(registry.request, alice, ['repository:team-a/img:pull,push']);
      const manifest = imageManifest();
      const agent = registry.request;
      agent.set('Authorization', `Bearer ${push}`);
      await pushManifest(agent, 'team-a/img', 'v1', manifest);
      const pull = await fetchToken(registry.request, bob, ['repository:team-a/img:pull']);
      agent.set('Authorization', `Bearer ${pull}`);
      const got = await agent.get('/v2/team-a/img/manifests/v1').set('Accept', ociManifestType).expect(200);
      assert.equal(got.headers['docker-content-digest'], manifest.digest);
    } finally {
      await registry.close();
      await rm(files.directory, { recursive: true, force: true });
    }
  });
});
