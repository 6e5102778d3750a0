import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import supertest from 'supertest';
import { limitConnections } from '../../src/http/connection-limits.js';
import { fetchToken, passwords, writeTestPolicy } from '../helpers/auth.js';
import { testBlob } from '../helpers/blobs.js';
import { envelopeCode, pushBlob } from '../helpers/push.js';
import { rawRequest } from '../helpers/raw-http.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

/**
 * The story: a CI farm shares one robot account, and a broken job opens upload sessions without end.
 * Past uploads.maxperrepository and uploads.maxperaccount a new session is 429 with Retry-After (as
 * docker and skopeo retry), other accounts push on, and finishing or cancelling frees a place.
 */
describe('open upload sessions are capped per repository and per account', () => {
  let registry: TestRegistry;
  let directory: string;
  const as = async (user: 'alice' | 'bob' | 'robot$ci', scopes: string[]) => {
    const password = user === 'robot$ci' ? passwords.robot : passwords[user];
    return supertest.agent(registry.registry.app.callback()).set('Authorization', `Bearer ${await fetchToken(registry.request, [user, password], scopes)}`);
  };
  before(async () => {
    const files = await writeTestPolicy();
    directory = files.directory;
    registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy }, uploads: { maxperrepository: 3, maxperaccount: 4 } });
  });
  after(async () => {
    await registry?.close();
    const { rm } = await import('node:fs/promises');
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('the fourth session in one repository is 429 with Retry-After, and stores nothing; alice still pushes elsewhere', async () => {
    const robot = await as('robot$ci', ['repository:team-b/app:pull,push', 'repository:team-b/other:pull,push', 'repository:team-b/third:pull,push']);
    const sessions: string[] = [];
    for (let index = 0; index < 3; index++) sessions.push((await robot.post('/v2/team-b/app/blobs/uploads/').expect(202)).headers.location as string);
    const before = await registry.rowCounts();
    const refused = await robot.post('/v2/team-b/app/blobs/uploads/').expect(429);
    assert.equal(envelopeCode(refused), 'TOOMANYREQUESTS');
    assert.equal(refused.headers['retry-after'], '30');
    assert.match(String((refused.body as { errors: Array<{ message: string }> }).errors[0]?.message), /3 uploads are open in team-b\/app already \(uploads\.maxperrepository\)/);
    const monolithic = testBlob(100);
    await robot.post(`/v2/team-b/app/blobs/uploads/?digest=${monolithic.digest}`).type('application/octet-stream').send(monolithic.bytes).expect(429);
    assert.deepEqual(await registry.rowCounts(), before, 'nothing stored');
    // The account's fourth, in another repository; its fifth is one too many for the account.
    await robot.post('/v2/team-b/other/blobs/uploads/').expect(202);
    const overAccount = await robot.post('/v2/team-b/third/blobs/uploads/').expect(429);
    assert.match(String((overAccount.body as { errors: Array<{ message: string }> }).errors[0]?.message), /4 uploads are open for this account already \(uploads\.maxperaccount\)/);
    assert.equal((await registry.metadata.db.selectFrom('repositories').select('name').where('name', '=', 'team-b/third').execute()).length, 0, 'no repository row for a refused start');
    const alice = await as('alice', ['repository:team-a/app:pull,push']);
    await pushBlob(alice, 'team-a/app', testBlob(500));
    // Finishing one frees its place.
    const blob = testBlob(700);
    await robot.patch(sessions[0]!).type('application/octet-stream').send(blob.bytes).expect(202);
    await robot.put(`${sessions[0]!}?digest=${blob.digest}`).expect(201);
    await robot.post('/v2/team-b/app/blobs/uploads/').expect(202);
  });
});

describe('request bodies that trickle, and too many connections', () => {
  let registry: TestRegistry;
  const lines: Array<{ msg: string; received?: number }> = [];
  before(async () => {
    registry = await createTestRegistry({
      http: { bodytimeout: '500ms', bodyminrate: '1KiB' },
      logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) }),
    });
  });
  after(async () => registry?.close());

  it('a PATCH sending a byte every 100 ms is cut off within two windows; its session keeps nothing; a fast one is untouched', async () => {
    const { port } = await registry.listen();
    const start = await rawRequest(port, 'POST', '/v2/team/app/blobs/uploads/');
    assert.equal(start.status, 202);
    const location = String(start.headers.location);
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`PATCH ${location} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const started = Date.now();
    const trickle = setInterval(() => socket.write('1\r\nx\r\n'), 100);
    const closed = await new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
    clearInterval(trickle);
    assert.ok(closed < 3000, `cut off after ${closed} ms`);
    assert.ok(lines.some((line) => line.msg.startsWith('request body too slow')), 'the log says why');
    const status = await rawRequest(port, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, '0-0', 'no byte of the trickle was committed');
    const blob = testBlob(256 * 1024);
    const fast = await rawRequest(port, 'PATCH', location, { headers: { 'Content-Type': 'application/octet-stream' }, body: blob.bytes });
    assert.equal(fast.status, 202);
  });

  it('past http.maxconnectionsperaddress and http.maxconnections, new connections are closed at once', async () => {
    const { server, port } = await registry.listen();
    limitConnections(server, { total: 5, perAddress: 3 }, pino({ level: 'silent' }));
    const open = (localAddress: string) =>
      new Promise<{ socket: Socket; refused: boolean }>((resolve) => {
        const socket = connect({ port, host: '127.0.0.1', localAddress });
        socket.once('close', () => resolve({ socket, refused: true }));
        socket.once('connect', () => {
          // An open connection answers; a refused one is closed before any answer.
          socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
          socket.once('data', () => resolve({ socket, refused: false }));
        });
      });
    const first = [await open('127.0.0.1'), await open('127.0.0.1'), await open('127.0.0.1')];
    assert.deepEqual(first.map((entry) => entry.refused), [false, false, false]);
    assert.equal((await open('127.0.0.1')).refused, true, 'a fourth from one address');
    const others = [await open('127.0.0.2'), await open('127.0.0.2')];
    assert.deepEqual(others.map((entry) => entry.refused), [false, false]);
    assert.equal((await open('127.0.0.3')).refused, true, 'a sixth in all');
    first[0]!.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await open('127.0.0.1');
    assert.equal(again.refused, false, 'a place freed is taken again');
    for (const entry of [...first, ...others, again]) entry.socket.destroy();
  });
});

describe('many clients at once', () => {
  it('10,000 HEADs in flight at once, over 200 connections, are all answered 200', async () => {
    const registry = await createTestRegistry();
    const agent = new Agent({ keepAlive: true, maxSockets: 200 });
    try {
      const blob = testBlob(1000);
      await pushBlob(registry.request, 'team/app', blob);
      const { port } = await registry.listen();
      const head = () =>
        new Promise<number>((resolve, reject) => {
          const call = request({ host: '127.0.0.1', port, method: 'HEAD', path: `/v2/team/app/blobs/${blob.digest}`, agent }, (response) => {
            response.resume();
            response.on('end', () => resolve(response.statusCode ?? 0));
          });
          call.on('error', reject);
          call.end();
        });
      const statuses = await Promise.all(Array.from({ length: 10_000 }, head));
      const counted = new Map<number, number>();
      for (const status of statuses) counted.set(status, (counted.get(status) ?? 0) + 1);
      assert.deepEqual([...counted], [[200, 10_000]]);
    } finally {
      agent.destroy();
      await registry.close();
    }
  });
});
