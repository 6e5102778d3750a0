import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { RegistryClient, RemoteTokenError, RemoteUnreachableError } from '../../src/remote/registry-client.js';
import { ManualClock } from '../helpers/clock.js';

/**
 * The one client of other registries (the mirror's upstreams, import over HTTP, replication): the
 * Docker token flow against a registry that challenges, token lifetimes, and answers that never come.
 */
describe('the registry client: challenges, token expiry, timeouts', () => {
  let server: Server;
  let base: string;
  const tokenRequests: URLSearchParams[] = [];
  const seen: Array<{ method: string; authorization: string | undefined; body: string }> = [];
  let lifetime = 300;
  let silent = false;

  before(async () => {
    let issued = 0;
    server = createServer((request: IncomingMessage, response: ServerResponse) => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (url.pathname === '/token') {
          tokenRequests.push(url.searchParams);
          const basic = request.headers.authorization === `Basic ${Buffer.from('ci:secret').toString('base64')}`;
          if (!basic) return response.writeHead(401).end();
          issued += 1;
          response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: `t${issued}`, expires_in: lifetime }));
          return;
        }
        if (url.pathname === '/v2/silent/manifests/x' && silent) return; // never answers
        seen.push({ method: request.method ?? '', authorization: request.headers.authorization, body: Buffer.concat(chunks).toString() });
        if (!request.headers.authorization?.startsWith('Bearer t')) {
          response.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${base}/token",service="test",scope="repository:team/app:pull"` }).end();
          return;
        }
        response.writeHead(200, { 'Content-Type': 'text/plain' }).end(request.headers.authorization);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const clientWith = (clock: ManualClock, timeoutMs = 5000) =>
    new RegistryClient({ baseUrl: base, credentials: { kind: 'basic', username: 'ci', password: 'secret' }, timeoutMs, userAgent: 'test', redirect: 'manual', clock });

  it('answers a bearer challenge with a token for the scopes it names and those asked, keeps it while it lives and fetches another once it expired', async () => {
    const clock = new ManualClock();
    const client = clientWith(clock);
    lifetime = 300;
    const first = await client.send('GET', '/v2/team/app/manifests/v1', { scopes: ['repository:team/app:pull,push'] });
    assert.equal(await first.response.text(), 'Bearer t1');
    assert.deepEqual(tokenRequests.at(-1)!.getAll('scope'), ['repository:team/app:pull', 'repository:team/app:pull,push']);
    assert.equal(tokenRequests.at(-1)!.get('account'), 'ci');
    assert.equal(tokenRequests.at(-1)!.get('service'), 'test');
    const asked = tokenRequests.length;
    clock.advance(250_000);
    assert.equal(await (await client.send('GET', '/v2/team/app/manifests/v1', { scopes: ['repository:team/app:pull,push'] })).response.text(), 'Bearer t1', 'still alive: no new token');
    assert.equal(tokenRequests.length, asked);
    clock.advance(60_000);
    assert.equal(await (await client.send('GET', '/v2/team/app/manifests/v1', { scopes: ['repository:team/app:pull,push'] })).response.text(), 'Bearer t2', 'expired: a new token');
    assert.equal(tokenRequests.length, asked + 1);
  });

  it('a streamed body is sent once, after the challenge was answered by a probe', async () => {
    const client = clientWith(new ManualClock());
    const before = seen.length;
    const reply = await client.send('PATCH', '/v2/team/app/blobs/uploads/1', { scopes: ['repository:team/app:pull,push'], body: Readable.from([Buffer.from('layer bytes')]) });
    assert.equal(reply.response.status, 200);
    const patches = seen.slice(before).filter((request) => request.method === 'PATCH');
    assert.deepEqual(patches.map((request) => request.body), ['layer bytes'], 'the body went once, with the token');
    assert.match(patches[0]!.authorization ?? '', /^Bearer t/);
  });

  it('a token service that refuses, and a registry that never answers, are errors naming why', async () => {
    const refused = new RegistryClient({ baseUrl: base, credentials: { kind: 'basic', username: 'ci', password: 'wrong' }, timeoutMs: 5000, userAgent: 'test', redirect: 'manual', clock: new ManualClock() });
    await assert.rejects(refused.send('GET', '/v2/team/app/manifests/v1', { scopes: [] }), (error: unknown) => error instanceof RemoteTokenError && error.status === 401);
    silent = true;
    const client = clientWith(new ManualClock(), 300);
    await assert.rejects(client.send('GET', '/v2/silent/manifests/x', { scopes: [] }), (error: unknown) => error instanceof RemoteUnreachableError && /no answer within 300 ms/.test(error.reason));
  });
});
