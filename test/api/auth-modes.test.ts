import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import jwt from 'jsonwebtoken';
import { libtrustKeyId } from '../../src/auth/keys.js';
import { testBlob } from '../helpers/blobs.js';
import { basic, passwords, writeTestPolicy } from '../helpers/auth.js';
import { envelopeCode, errorMessage } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

describe('htpasswd mode: HTTP Basic on every request', () => {
  let registry: TestRegistry;
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  before(async () => {
    files = await writeTestPolicy();
    registry = await createTestRegistry({ auth: { mode: 'htpasswd', policy: files.policy, htpasswd: { path: files.htpasswd, realm: 'Private Registry' } } });
  });
  after(async () => {
    await registry.close();
    await rm(files.directory, { recursive: true, force: true });
  });

  it('asks for credentials with a Basic challenge, refuses wrong ones, accepts right ones', async () => {
    const none = await registry.request.get('/v2/').expect(401);
    assert.equal(none.headers['www-authenticate'], 'Basic realm="Private Registry"');
    assert.equal(envelopeCode(none), 'UNAUTHORIZED');
    await registry.request.get('/v2/').set('Authorization', basic('alice', 'wrong')).expect(401);
    await registry.request.get('/v2/').set('Authorization', basic('carol', passwords.carol)).expect(200);
    await registry.request.get('/v2/').set('Authorization', 'Bearer something').expect(401);
  });

  it('applies the policy: a pull-only user cannot push, nothing is stored; the owner can', async () => {
    const blob = testBlob(900);
    const denied = await registry.request
      .post(`/v2/team-a/app/blobs/uploads/?digest=${blob.digest}`)
      .set('Authorization', basic('bob', passwords.bob))
      .type('application/octet-stream')
      .send(blob.bytes)
      .expect(403);
    assert.equal(envelopeCode(denied), 'DENIED');
    assert.equal((await registry.rowCounts()).blobs, 0);
    await registry.request
      .post(`/v2/team-a/app/blobs/uploads/?digest=${blob.digest}`)
      .set('Authorization', basic('alice', passwords.alice))
      .type('application/octet-stream')
      .send(blob.bytes)
      .expect(201);
    await registry.request.get(`/v2/team-a/app/blobs/${blob.digest}`).set('Authorization', basic('bob', passwords.bob)).expect(200);
    await registry.request.get(`/v2/team-a/app/blobs/${blob.digest}`).expect(401);
  });

  it('a refusal of a correct password names the account and what it lacks', async () => {
    const refused = await registry.request.put('/v2/team-b/app/manifests/v1').set('Authorization', basic('carol', passwords.carol)).type('application/vnd.oci.image.manifest.v1+json').send('{}').expect(403);
    assert.equal(errorMessage(refused), 'carol is not granted repository:team-b/app:push');
    const catalog = await registry.request.get('/v2/_catalog').set('Authorization', basic('bob', passwords.bob)).expect(403);
    assert.equal(errorMessage(catalog), 'bob is not granted registry:catalog:*');
    assert.equal((await registry.rowCounts()).repositories, 1, 'only team-a/app, from the test before');
  });

  it('a client failing one account\'s logins does not lock out other accounts at its address; a spray over many accounts stops newcomers only', async () => {
    const fresh = await createTestRegistry({ trustProxy: true, auth: { mode: 'htpasswd', policy: files.policy, htpasswd: { path: files.htpasswd } } });
    try {
      const from = (address: string, user: string, password: string) => fresh.request.get('/v2/').set('X-Forwarded-For', address).set('Authorization', basic(user, password));
      await from('192.0.2.10', 'alice', passwords.alice).expect(200);
      for (let attempt = 0; attempt < 10; attempt++) await from('192.0.2.10', 'robot$ci', `old-secret-${attempt}`).expect(401);
      const locked = await from('192.0.2.10', 'robot$ci', passwords.robot).expect(429);
      assert.match(errorMessage(locked), /too many failed logins of robot\$ci from this address/);
      assert.ok(Number(locked.headers['retry-after']) > 0);
      await from('192.0.2.10', 'bob', passwords.bob).expect(200);
      await from('192.0.2.11', 'robot$ci', passwords.robot).expect(200);
      for (let account = 0; account < 90; account++) await from('192.0.2.10', `user-${account}`, 'guess').expect(401);
      const sprayed = await from('192.0.2.10', 'olga', passwords.olga).expect(429);
      assert.match(errorMessage(sprayed), /too many failed logins from this address/);
      await from('192.0.2.10', 'alice', 'a-new-alice-password-guess').expect(401);
      await from('192.0.2.10', 'bob', passwords.bob).expect(200);
    } finally {
      await fresh.close();
    }
  });

  it('anonymous requests get what the rules give anonymous', async () => {
    await registry.request.get('/v2/public/tools/tags/list').expect(404);
    await registry.request.get('/v2/team-a/app/tags/list').expect(401);
  });

  it('has no token endpoint', async () => {
    await registry.request.get('/auth/token').expect(404);
  });
});

describe('token mode with an external issuer', () => {
  let directory: string;
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  const issuer = 'harbor-token-issuer';
  const service = 'harbor-registry';
  const claims = (actions: string[]) => ({
    iss: issuer,
    aud: service,
    sub: 'ci-bot',
    access: [{ type: 'repository', name: 'team/app', actions }],
  });

  before(async () => {
    files = await writeTestPolicy();
    directory = files.directory;
  });
  after(async () => rm(directory, { recursive: true, force: true }));

  it('trusts keys from a JWKS file, chosen by kid; refuses unknown keys', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwks = path.join(directory, 'jwks.json');
    await writeFile(jwks, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'key-2026', use: 'sig', alg: 'RS256' }] }));
    const registry = await createTestRegistry({
      auth: { mode: 'token', token: { builtin: false, jwks, issuer, service, realm: 'https://auth.example.com/token' } },
    });
    try {
      const challenge = await registry.request.get('/v2/').expect(401);
      assert.equal(challenge.headers['www-authenticate'], `Bearer realm="https://auth.example.com/token",service="${service}"`);
      await registry.request.get('/auth/token').expect(404);
      const good = jwt.sign(claims(['pull']), privateKey, { algorithm: 'RS256', keyid: 'key-2026', expiresIn: 300 });
      await registry.request.get('/v2/team/app/tags/list').set('Authorization', `Bearer ${good}`).expect(404);
      const unknownKid = jwt.sign(claims(['pull']), privateKey, { algorithm: 'RS256', keyid: 'key-2025', expiresIn: 300 });
      await registry.request.get('/v2/team/app/tags/list').set('Authorization', `Bearer ${unknownKid}`).expect(401);
      const push = await registry.request.post('/v2/team/app/blobs/uploads/').set('Authorization', `Bearer ${good}`).expect(403);
      assert.equal(envelopeCode(push), 'DENIED');
    } finally {
      await registry.close();
    }
  });

  it('fetches a JWKS from a URL at start', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let fetches = 0;
    const jwksServer = createServer((_request, response) => {
      fetches++;
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'url-key' }] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const jwks = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
    const registry = await createTestRegistry({ auth: { mode: 'token', token: { builtin: false, jwks, issuer, service, realm: 'https://auth.example.com/token' } } });
    try {
      assert.equal(fetches, 1);
      const good = jwt.sign(claims(['pull']), privateKey, { algorithm: 'ES256', keyid: 'url-key', expiresIn: 300 });
      await registry.request.get('/v2/').set('Authorization', `Bearer ${good}`).expect(200);
      const other = jwt.sign(claims(['pull']), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { algorithm: 'ES256', keyid: 'url-key', expiresIn: 300 });
      await registry.request.get('/v2/').set('Authorization', `Bearer ${other}`).expect(401);
    } finally {
      await registry.close();
      jwksServer.closeAllConnections();
      await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
    }
  });

  it('trusts a certificate bundle: tokens naming the key by libtrust kid or carrying an x5c chain it signed', async () => {
    const caKey = path.join(directory, 'ca.key');
    const caCert = path.join(directory, 'ca.pem');
    const leafKey = path.join(directory, 'leaf.key');
    const leafCsr = path.join(directory, 'leaf.csr');
    const leafCert = path.join(directory, 'leaf.pem');
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=token-ca');
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', leafKey, '-out', leafCsr, '-subj', '/CN=token-signer');
    openssl('x509', '-req', '-in', leafCsr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', leafCert, '-days', '2');
    const registry = await createTestRegistry({
      auth: { mode: 'token', token: { builtin: false, rootcertbundle: caCert, issuer, service, realm: 'https://auth.example.com/token' } },
    });
    try {
      const caPrivate = createPrivateKey(await readFile(caKey, 'utf8'));
      const byKid = jwt.sign(claims(['pull']), caPrivate, { algorithm: 'ES256', keyid: libtrustKeyId(createPublicKey(caPrivate)), expiresIn: 300 });
      await registry.request.get('/v2/').set('Authorization', `Bearer ${byKid}`).expect(200);
      const leafPrivate = createPrivateKey(await readFile(leafKey, 'utf8'));
      const leafDer = (await readFile(leafCert, 'utf8')).replace(/-----[A-Z ]+-----|\s/g, '');
      const byChain = jwt.sign(claims(['pull']), leafPrivate, { algorithm: 'ES256', header: { alg: 'ES256', x5c: [leafDer] }, expiresIn: 300 });
      await registry.request.get('/v2/').set('Authorization', `Bearer ${byChain}`).expect(200);
      // A self-made certificate the bundle did not sign is not trusted.
      const rogueKey = path.join(directory, 'rogue.key');
      const rogueCert = path.join(directory, 'rogue.pem');
      openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', rogueKey, '-out', rogueCert, '-days', '2', '-subj', '/CN=token-signer');
      const roguePrivate = createPrivateKey(await readFile(rogueKey, 'utf8'));
      const rogueDer = (await readFile(rogueCert, 'utf8')).replace(/-----[A-Z ]+-----|\s/g, '');
      const rogue = jwt.sign(claims(['pull']), roguePrivate, { algorithm: 'ES256', header: { alg: 'ES256', x5c: [rogueDer] }, expiresIn: 300 });
      const refused = await registry.request.get('/v2/').set('Authorization', `Bearer ${rogue}`).expect(401);
      assert.match(String(refused.headers['www-authenticate']), /error="invalid_token"/);
      // The leaf's key with the CA's kid: the signature does not verify.
      const mixed = jwt.sign(claims(['pull']), leafPrivate, { algorithm: 'ES256', keyid: libtrustKeyId(createPublicKey(caPrivate)), expiresIn: 300 });
      await registry.request.get('/v2/').set('Authorization', `Bearer ${mixed}`).expect(401);
    } finally {
      await registry.close();
    }
  });
});

describe('auth behind a reverse proxy (http.trustproxy)', () => {
  it('names the public token realm and throttles by the client address the proxy forwards', async () => {
    const files = await writeTestPolicy();
    const registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy }, trustProxy: true });
    try {
      const challenge = await registry.request.get('/v2/').set('X-Forwarded-Proto', 'https').set('X-Forwarded-Host', 'registry.example.com').expect(401);
      assert.match(String(challenge.headers['www-authenticate']), /^Bearer realm="https:\/\/registry\.example\.com\/auth\/token"/);
      for (let attempt = 0; attempt < 10; attempt++) {
        await registry.request.get('/auth/token').set('X-Forwarded-For', '203.0.113.7').set('Authorization', basic('alice', 'guess')).expect(401);
      }
      await registry.request.get('/auth/token').set('X-Forwarded-For', '203.0.113.7').set('Authorization', basic('alice', passwords.alice)).expect(429);
      await registry.request.get('/auth/token').set('X-Forwarded-For', '198.51.100.9').set('Authorization', basic('alice', passwords.alice)).expect(200);
    } finally {
      await registry.close();
      await rm(files.directory, { recursive: true, force: true });
    }
  });

  it('without it, forwarded headers are ignored', async () => {
    const files = await writeTestPolicy();
    const registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
    try {
      const challenge = await registry.request.get('/v2/').set('X-Forwarded-Proto', 'https').set('X-Forwarded-Host', 'evil.example.com').expect(401);
      assert.match(String(challenge.headers['www-authenticate']), /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token"/);
    } finally {
      await registry.close();
      await rm(files.directory, { recursive: true, force: true });
    }
  });
});
