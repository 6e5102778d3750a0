import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import pino from 'pino';
import { staleWarningEveryMs } from '../../src/mirror/ttl-cache.js';
import { ManualClock } from '../helpers/clock.js';
import { testBlob } from '../helpers/blobs.js';
import { allManifestTypes, dockerManifestType, imageManifest, indexOf, ociManifestType, pushManifest, referrerOf, type TestManifest } from '../helpers/images.js';
import { binary, envelopeCode, pushBlob } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { mirrorConfigFor, startTestUpstream, type TestUpstream } from '../helpers/upstream.js';

const repo = 'team-a/app';
const viaPrefix = `/v2/central/${repo}`;

async function pushUpstream(upstream: TestUpstream, repository: string, reference: string, manifest: TestManifest): Promise<void> {
  const agent = await upstream.pusher([`repository:${repository}:pull,push`]);
  await pushManifest(agent, repository, reference, manifest);
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** GET of a blob over a real connection, tolerating a body cut short: the bytes that arrived and whether it ended cleanly. */
async function rawGet(
  port: number,
  path: string,
  options: { abortAfter?: number; pause?: { after: number; forMs: number } } = {},
): Promise<{ status: number; body: Buffer; complete: boolean; endedAt: number; resumedAt?: number }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let received = 0;
    let paused = false;
    let resumedAt: number | undefined;
    const request = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      status = response.statusCode ?? 0;
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        if (options.abortAfter !== undefined && received >= options.abortAfter) request.destroy();
        if (options.pause && !paused && received >= options.pause.after) {
          paused = true;
          response.pause();
          setTimeout(() => {
            resumedAt = Date.now();
            response.resume();
          }, options.pause.forMs);
        }
      });
      response.on('end', () => resolve({ status, body: Buffer.concat(chunks), complete: response.complete, endedAt: Date.now(), ...(resumedAt ? { resumedAt } : {}) }));
      response.on('error', () => resolve({ status, body: Buffer.concat(chunks), complete: false, endedAt: Date.now() }));
      response.on('aborted', () => resolve({ status, body: Buffer.concat(chunks), complete: false, endedAt: Date.now() }));
    });
    request.on('error', () => resolve({ status, body: Buffer.concat(chunks), complete: false, endedAt: Date.now() }));
    request.end();
  });
}

async function assertNoMirroredBlob(mirror: TestRegistry, digest: string): Promise<void> {
  const db = mirror.metadata.db;
  assert.deepEqual(await db.selectFrom('mirror_blobs').select('repository').where('digest', '=', digest).execute(), [], 'no mirror blob row');
  assert.deepEqual(await db.selectFrom('blobs').select('size').where('digest', '=', digest).execute(), [], 'no blob row');
  const files = await mirror.storedFiles();
  assert.deepEqual(files.filter((file) => file.includes(digest.slice('sha256:'.length))), [], 'no bytes under blobs/');
}

describe('pull-through mirror', () => {
  let upstream: TestUpstream;
  let mirror: TestRegistry;
  let image: TestManifest;

  before(async () => {
    upstream = await startTestUpstream();
    image = imageManifest();
    await pushUpstream(upstream, repo, 'v1', image);
    mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**', 'public/**', 'library/**'] }, { default: 'central' }) });
  });
  after(async () => {
    await mirror.close();
    await upstream.close();
  });
  afterEach(() => {
    upstream.fault = null;
  });

  it('a reference that cannot exist is 404 MANIFEST_UNKNOWN by every addressing, without asking the upstream', async () => {
    const before = upstream.seen.length;
    for (const path of [`${viaPrefix}/manifests/.INVALID_MANIFEST_NAME`, `/v2/${repo}/manifests/-bad`, `/v2/${repo}/manifests/sha256:abc?ns=docker.io`]) {
      const response = await mirror.request.get(path).set('Accept', allManifestTypes).expect(404);
      assert.equal(envelopeCode(response), 'MANIFEST_UNKNOWN', path);
      await mirror.request.head(path).set('Accept', allManifestTypes).expect(404);
    }
    assert.equal(upstream.seen.length, before, 'no upstream request');
    assert.equal(await mirror.metadata.db.selectFrom('mirror_manifests').select('digest').executeTakeFirst(), undefined);
  });

  it('serves an upstream image by path prefix, through the upstream token flow, then from cache without asking again', async () => {
    const manifest = await mirror.request.get(`${viaPrefix}/manifests/v1`).set('Accept', allManifestTypes).buffer(true).parse(binary).expect(200);
    assert.deepEqual(manifest.body, image.bytes);
    assert.equal(manifest.headers['docker-content-digest'], image.digest);
    assert.equal(manifest.headers['content-type'], ociManifestType);
    for (const blob of image.blobs) {
      const response = await mirror.request.get(`${viaPrefix}/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
      assert.deepEqual(response.body, blob.bytes);
      assert.equal(response.headers['docker-content-digest'], blob.digest);
    }
    assert.ok(upstream.seen.some((request) => request.path === '/auth/token'), 'the mirror fetched a token');
    const before = upstream.seen.length;
    await mirror.request.get(`${viaPrefix}/manifests/v1`).set('Accept', allManifestTypes).expect(200);
    await mirror.request.get(`${viaPrefix}/manifests/${image.digest}`).set('Accept', allManifestTypes).expect(200);
    for (const blob of image.blobs) {
      const again = await mirror.request.get(`${viaPrefix}/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
      assert.deepEqual(again.body, blob.bytes);
      await mirror.request.head(`${viaPrefix}/blobs/${blob.digest}`).expect(200).expect('Content-Length', String(blob.bytes.length));
    }
    assert.equal(upstream.seen.length, before, 'a fresh tag, a digest and cached blobs need no upstream request');
    // Cached content is its own: nothing of it shows as a local repository.
    assert.equal((await mirror.rowCounts()).repositories, 0);
  });

  it('serves the same cache for containerd\'s ?ns= form and for plain names of the default upstream', async () => {
    const before = upstream.seen.length;
    const byNs = await mirror.request.get(`/v2/${repo}/manifests/v1?ns=central`).set('Accept', allManifestTypes).expect(200);
    assert.equal(byNs.headers['docker-content-digest'], image.digest);
    const host = new URL(upstream.url).host;
    await mirror.request.get(`/v2/${repo}/manifests/v1?ns=${encodeURIComponent(host)}`).set('Accept', allManifestTypes).expect(200);
    const plain = await mirror.request.get(`/v2/${repo}/blobs/${image.blobs[1]!.digest}`).buffer(true).parse(binary).expect(200);
    assert.deepEqual(plain.body, image.blobs[1]!.bytes);
    assert.equal(upstream.seen.length, before);
  });

  it('serves a fresh tag from cache without asking the upstream, even when the upstream has moved it meanwhile', async () => {
    const getFresh = () => mirror.request.get(`${viaPrefix}/manifests/fresh`).set('Accept', allManifestTypes);
    const before = imageManifest();
    await pushUpstream(upstream, repo, 'fresh', before);
    assert.equal((await getFresh().expect(200)).headers['docker-content-digest'], before.digest);
    await pushUpstream(upstream, repo, 'fresh', imageManifest());
    const asked = upstream.count('GET', `/v2/${repo}/manifests/fresh`) + upstream.count('HEAD', `/v2/${repo}/manifests/fresh`);
    assert.equal((await getFresh().expect(200)).headers['docker-content-digest'], before.digest, 'within its TTL (5 minutes here) the cached digest stands');
    assert.equal(upstream.count('GET', `/v2/${repo}/manifests/fresh`) + upstream.count('HEAD', `/v2/${repo}/manifests/fresh`), asked, 'no upstream request');
  });

  it('refuses pushes and deletes into mirrored names with 405 UNSUPPORTED and stores nothing; other names stay local', async () => {
    const countsBefore = await mirror.rowCounts();
    for (const name of [`central/${repo}`, repo]) {
      const start = await mirror.request.post(`/v2/${name}/blobs/uploads/`).expect(405);
      assert.equal(envelopeCode(start), 'UNSUPPORTED');
      assert.match(start.text, /allowpush/);
      await mirror.request.put(`/v2/${name}/manifests/v2`).set('Content-Type', ociManifestType).send(image.bytes.toString('utf8')).expect(405);
      await mirror.request.delete(`/v2/${name}/manifests/${image.digest}`).expect(405);
    }
    assert.deepEqual(await mirror.rowCounts(), countsBefore);
    const local = imageManifest();
    await pushManifest(mirror.request, 'mine/app', 'v1', local);
    const served = await mirror.request.get('/v2/mine/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
    assert.equal(served.headers['docker-content-digest'], local.digest);
  });

  it('answers 404 when the upstream has no such manifest or blob, and NAME_UNKNOWN for names the upstream may not serve', async () => {
    const missingTag = await mirror.request.get(`${viaPrefix}/manifests/nope`).set('Accept', allManifestTypes).expect(404);
    assert.equal(envelopeCode(missingTag), 'MANIFEST_UNKNOWN');
    assert.match(missingTag.text, /upstream central/);
    const absent = testBlob(10);
    assert.equal(envelopeCode(await mirror.request.get(`${viaPrefix}/blobs/${absent.digest}`).expect(404)), 'BLOB_UNKNOWN');
    await mirror.request.head(`${viaPrefix}/blobs/${absent.digest}`).expect(404);
    const notServed = await mirror.request.get('/v2/central/team-b/app/manifests/v1').set('Accept', allManifestTypes).expect(404);
    assert.equal(envelopeCode(notServed), 'NAME_UNKNOWN');
    await assertNoMirroredBlob(mirror, absent.digest);
  });

  it('answers HEAD of an uncached blob from the upstream without fetching its bytes', async () => {
    const fresh = imageManifest();
    await pushUpstream(upstream, repo, 'head-only', fresh);
    const layer = fresh.blobs[1]!;
    await mirror.request.head(`${viaPrefix}/blobs/${layer.digest}`).expect(200).expect('Content-Length', String(layer.bytes.length));
    assert.equal(upstream.count('GET', `/blobs/${layer.digest}`), 0);
    assert.equal(upstream.count('HEAD', `/blobs/${layer.digest}`), 1);
  });

  it('fetches a blob once however many clients ask at once, and streams it to all of them', async () => {
    const big = testBlob(12 * 1024 * 1024);
    const agent = await upstream.pusher([`repository:${repo}:pull,push`]);
    await pushBlob(agent, repo, big);
    const { server, port } = await mirror.listen();
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () => rawGet(port, `${viaPrefix}/blobs/${big.digest}`)));
      for (const result of results) {
        assert.equal(result.status, 200);
        assert.equal(result.complete, true);
        assert.equal(sha256(result.body), big.digest);
      }
      assert.equal(upstream.count('GET', `/blobs/${big.digest}`), 1, 'one upstream fetch');
    } finally {
      server.closeAllConnections();
    }
  });

  it('goes on fetching for the others when one client disconnects, and caches the blob', async () => {
    const big = testBlob(8 * 1024 * 1024);
    const agent = await upstream.pusher([`repository:${repo}:pull,push`]);
    await pushBlob(agent, repo, big);
    const { port } = await mirror.listen();
    const [quitter, stayer] = await Promise.all([
      rawGet(port, `${viaPrefix}/blobs/${big.digest}`, { abortAfter: 64 * 1024 }),
      rawGet(port, `${viaPrefix}/blobs/${big.digest}`),
    ]);
    assert.equal(quitter.complete, false);
    assert.equal(stayer.complete, true);
    assert.equal(sha256(stayer.body), big.digest);
    const again = await mirror.request.get(`${viaPrefix}/blobs/${big.digest}`).buffer(true).parse(binary).expect(200);
    assert.equal(sha256(again.body), big.digest);
    assert.equal(upstream.count('GET', `/blobs/${big.digest}`), 1);
  });

  it('goes at the pace of its clients, but lets one that stops reading go: the other gets the whole blob, the stalled one the rest from storage', async () => {
    const big = testBlob(48 * 1024 * 1024);
    const agent = await upstream.pusher([`repository:${repo}:pull,push`]);
    await pushBlob(agent, repo, big);
    const { server, port } = await mirror.listen();
    try {
      const [stalled, reader] = await Promise.all([
        rawGet(port, `${viaPrefix}/blobs/${big.digest}`, { pause: { after: 64 * 1024, forMs: 6000 } }),
        rawGet(port, `${viaPrefix}/blobs/${big.digest}`),
      ]);
      for (const result of [stalled, reader]) {
        assert.equal(result.complete, true);
        assert.equal(sha256(result.body), big.digest);
      }
      assert.ok(stalled.resumedAt !== undefined && reader.endedAt < stalled.resumedAt, 'the reading client had every byte before the stalled one read again');
      assert.equal(upstream.count('GET', `/blobs/${big.digest}`), 1, 'one upstream fetch');
    } finally {
      server.closeAllConnections();
    }
  });

  it('serves a range of an uncached blob once it is fetched', async () => {
    const blob = testBlob(100_000);
    const agent = await upstream.pusher([`repository:${repo}:pull,push`]);
    await pushBlob(agent, repo, blob);
    const response = await mirror.request.get(`${viaPrefix}/blobs/${blob.digest}`).set('Range', 'bytes=10-19').buffer(true).parse(binary).expect(206);
    assert.deepEqual(response.body, blob.bytes.subarray(10, 20));
  });

  it('resolves a manifest list for a client that does not accept lists, fetching the child through the mirror', async () => {
    const amd64 = imageManifest({ docker: true });
    const arm64 = imageManifest({ docker: true });
    const agent = await upstream.pusher([`repository:${repo}:pull,push`]);
    await pushManifest(agent, repo, amd64.digest, amd64);
    await pushManifest(agent, repo, arm64.digest, arm64);
    const list = indexOf([{ manifest: amd64, architecture: 'amd64' }, { manifest: arm64, architecture: 'arm64' }], true);
    await pushManifest(agent, repo, 'multi', list);
    const response = await mirror.request.get(`${viaPrefix}/manifests/multi`).set('Accept', dockerManifestType).expect(200);
    assert.equal(response.headers['docker-content-digest'], amd64.digest);
    const whole = await mirror.request.get(`${viaPrefix}/manifests/multi`).set('Accept', allManifestTypes).expect(200);
    assert.equal(whole.headers['docker-content-digest'], list.digest);
  });

  it('refuses a request that already passed through it (Via) with 508', async () => {
    const status = (await mirror.request.get('/api/v1/mirror/status').expect(200)).body as { instanceId: string };
    const looped = await mirror.request.get(`${viaPrefix}/manifests/v1`).set('Via', `1.1 other, 1.1 ${status.instanceId}`).expect(508);
    assert.equal(envelopeCode(looped), 'LOOP_DETECTED');
    const hop = upstream.seen.find((request) => request.path.startsWith(`/v2/${repo}/`));
    assert.match(hop?.via ?? '', new RegExp(`1\\.1 ${status.instanceId}$`), 'upstream requests carry our Via');
  });

  it('lists a mirrored repository\'s tags from the upstream, page by page', async () => {
    const all = await mirror.request.get(`${viaPrefix}/tags/list`).expect(200);
    const tags = (all.body as { name: string; tags: string[] }).tags;
    assert.equal((all.body as { name: string }).name, `central/${repo}`);
    assert.ok(tags.includes('v1') && tags.includes('multi'), tags.join(','));
    assert.deepEqual(tags, [...tags].sort());
    const first = await mirror.request.get(`${viaPrefix}/tags/list?n=1`).expect(200);
    assert.deepEqual((first.body as { tags: string[] }).tags, [tags[0]]);
    assert.match(String(first.headers.link), /rel="next"/);
    const rest = await mirror.request.get(`${viaPrefix}/tags/list?last=${encodeURIComponent(tags[0]!)}`).expect(200);
    assert.deepEqual((rest.body as { tags: string[] }).tags, tags.slice(1));
  });

  it('reports each upstream in /api/v1/mirror/status', async () => {
    const status = (await mirror.request.get('/api/v1/mirror/status').expect(200)).body as {
      upstreams: Array<{ name: string; url: string; state: string; lastSuccess: unknown; cacheHits: number; cacheMisses: number; bytesFetched: number; bytesServed: number }>;
    };
    const central = status.upstreams[0]!;
    assert.equal(central.name, 'central');
    assert.equal(central.url, upstream.url);
    assert.equal(central.state, 'reachable');
    assert.ok(central.lastSuccess);
    assert.ok(central.cacheHits > 0 && central.cacheMisses > 0);
    assert.ok(central.bytesFetched >= 12 * 1024 * 1024, `bytes fetched ${central.bytesFetched}`);
    assert.ok(central.bytesServed >= central.bytesFetched, `bytes served ${central.bytesServed}`);
  });
});

describe('pull-through mirror: wrong or missing upstream bytes', () => {
  let upstream: TestUpstream;
  let mirror: TestRegistry;
  let blob: ReturnType<typeof testBlob>;
  before(async () => {
    upstream = await startTestUpstream();
    blob = testBlob(3 * 1024 * 1024);
    const agent = await upstream.pusher([`repository:${repo}:pull,push`]);
    await pushBlob(agent, repo, blob);
    mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream) });
  });
  after(async () => {
    await mirror.close();
    await upstream.close();
  });
  afterEach(() => {
    upstream.fault = null;
  });

  const blobPath = () => `/v2/${repo}/blobs/${blob.digest}`;

  it('caches nothing when the upstream sends other bytes than the digest names, and no client gets a whole body', async () => {
    upstream.fault = (request, response) => {
      if (request.method !== 'GET' || request.url !== blobPath()) return false;
      const wrong = Buffer.from(blob.bytes);
      wrong[wrong.length - 1] = (wrong[wrong.length - 1] ?? 0) ^ 0xff;
      response.writeHead(200, { 'Content-Length': String(wrong.length), 'Docker-Content-Digest': blob.digest });
      response.end(wrong);
      return true;
    };
    const { port } = await mirror.listen();
    const result = await rawGet(port, `${viaPrefix}/blobs/${blob.digest}`);
    assert.equal(result.complete, false, 'the body is cut short');
    await assertNoMirroredBlob(mirror, blob.digest);
  });

  it('caches nothing when the upstream body ends early', async () => {
    upstream.fault = (request, response) => {
      if (request.method !== 'GET' || request.url !== blobPath()) return false;
      response.writeHead(200, { 'Content-Length': String(blob.bytes.length) });
      response.write(blob.bytes.subarray(0, 1024 * 1024), () => response.destroy());
      return true;
    };
    const { port } = await mirror.listen();
    const result = await rawGet(port, `${viaPrefix}/blobs/${blob.digest}`);
    assert.equal(result.complete, false);
    await assertNoMirroredBlob(mirror, blob.digest);
  });

  it('answers 503 naming the upstream for a range of a blob that arrived wrong', async () => {
    upstream.fault = (request, response) => {
      if (request.method !== 'GET' || request.url !== blobPath()) return false;
      response.writeHead(200, { 'Content-Length': '5' });
      response.end('wrong');
      return true;
    };
    const response = await mirror.request.get(`${viaPrefix}/blobs/${blob.digest}`).set('Range', 'bytes=0-1').expect(503);
    assert.match(response.text, /upstream central/);
    await assertNoMirroredBlob(mirror, blob.digest);
  });

  it('fetches afresh once the upstream sends the right bytes', async () => {
    const response = await mirror.request.get(`${viaPrefix}/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
    assert.equal(sha256(response.body), blob.digest);
    const fetches = upstream.count('GET', blobPath());
    // The client may have its last bytes before the blob is committed; a second client joins that fetch or finds the cache.
    const again = await mirror.request.get(`${viaPrefix}/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
    assert.equal(sha256(again.body), blob.digest);
    assert.equal(upstream.count('GET', blobPath()), fetches, 'the second pull did not go upstream');
    assert.equal((await mirror.rowCounts()).mirror_blobs, 1);
  });
});

describe('pull-through mirror: tags over time and an upstream that fails', () => {
  let upstream: TestUpstream;
  let mirror: TestRegistry;
  let first: TestManifest;
  before(async () => {
    upstream = await startTestUpstream();
    first = imageManifest();
    await pushUpstream(upstream, repo, 'latest', first);
    mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { ttl: '300ms', timeout: '2s' }, { failurethreshold: 2, cooloff: '1s' }) });
  });
  after(async () => {
    await mirror.close();
    await upstream.close();
  });
  afterEach(() => {
    upstream.fault = null;
  });

  const getLatest = () => mirror.request.get(`${viaPrefix}/manifests/latest`).set('Accept', allManifestTypes);
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('revalidates a stale tag with one HEAD and no body when upstream has not moved it', async () => {
    assert.equal((await getLatest().expect(200)).headers['docker-content-digest'], first.digest);
    await sleep(400);
    const gets = upstream.count('GET', `/v2/${repo}/manifests/latest`);
    const heads = upstream.count('HEAD', `/v2/${repo}/manifests/latest`);
    assert.equal((await getLatest().expect(200)).headers['docker-content-digest'], first.digest);
    assert.equal(upstream.count('HEAD', `/v2/${repo}/manifests/latest`), heads + 1);
    assert.equal(upstream.count('GET', `/v2/${repo}/manifests/latest`), gets);
  });

  it('sees a tag moved upstream once the TTL has passed', async () => {
    await getLatest().expect(200);
    const second = imageManifest();
    await pushUpstream(upstream, repo, 'latest', second);
    await sleep(400);
    assert.equal((await getLatest().expect(200)).headers['docker-content-digest'], second.digest);
    first = second;
  });

  it('records each mirrored tag first seen, moved and gone upstream, and answers the history over HTTP, newest first, in pages', async () => {
    const tagPath = `/v2/${repo}/manifests/history`;
    const getTag = () => mirror.request.get(`${viaPrefix}/manifests/history`).set('Accept', allManifestTypes);
    const one = imageManifest();
    const two = imageManifest();
    await pushUpstream(upstream, repo, 'history', one);
    await getTag().expect(200);
    await sleep(400);
    await getTag().expect(200);
    await pushUpstream(upstream, repo, 'history', two);
    await sleep(400);
    assert.equal((await getTag().expect(200)).headers['docker-content-digest'], two.digest);
    upstream.fault = (request, response) => {
      if (request.url !== tagPath) return false;
      response.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'gone' }] }));
      return true;
    };
    await sleep(400);
    await getTag().expect(404);

    type History = { events: Array<{ id: number; upstream: string; repository: string; tag: string; from: string | null; to: string | null; at: string }> };
    const query = { upstream: 'central', repository: repo, tag: 'history' };
    const all = (await mirror.request.get('/api/v1/mirror/history').query(query).expect(200)).body as History;
    assert.deepEqual(
      all.events.map((event) => [event.upstream, event.repository, event.tag, event.from, event.to]),
      [
        ['central', repo, 'history', two.digest, null],
        ['central', repo, 'history', one.digest, two.digest],
        ['central', repo, 'history', null, one.digest],
      ],
      'gone, moved, first seen; the unchanged revalidation adds nothing',
    );
    for (const event of all.events) assert.ok(Math.abs(Date.parse(event.at) - Date.now()) < 60_000, event.at);

    const firstPage = await mirror.request.get('/api/v1/mirror/history').query({ ...query, n: 2 }).expect(200);
    assert.deepEqual((firstPage.body as History).events, all.events.slice(0, 2));
    const next = /^<([^>]+)>; rel="next"$/.exec(firstPage.headers.link ?? '')?.[1];
    assert.ok(next, `a Link to the next page: ${firstPage.headers.link}`);
    const secondPage = await mirror.request.get(next).expect(200);
    assert.deepEqual((secondPage.body as History).events, all.events.slice(2));
    assert.equal(secondPage.headers.link, undefined, 'no page after the last');

    const everything = (await mirror.request.get('/api/v1/mirror/history').expect(200)).body as History;
    assert.ok(everything.events.some((event) => event.tag === 'latest'), 'unfiltered: every mirrored tag');
    assert.deepEqual(((await mirror.request.get('/api/v1/mirror/history').query({ upstream: 'elsewhere' }).expect(200)).body as History).events, []);
    const bad = await mirror.request.get('/api/v1/mirror/history').query({ last: 'yesterday' }).expect(400);
    assert.equal(envelopeCode(bad), 'PAGINATION_NUMBER_INVALID');
  });

  it('serves cached tags while the upstream answers 5xx, then stops asking it until the cool-off has passed', async () => {
    await getLatest().expect(200);
    await sleep(400);
    upstream.fault = (request, response) => {
      if (!request.url?.startsWith('/v2/')) return false;
      response.writeHead(500).end();
      return true;
    };
    const before = upstream.seen.length;
    for (let attempt = 0; attempt < 4; attempt++) {
      assert.equal((await getLatest().expect(200)).headers['docker-content-digest'], first.digest, 'stale-if-error');
    }
    assert.equal(upstream.seen.length - before, 2, 'two failures open the circuit; later pulls do not wait on the upstream');
    const uncached = await mirror.request.get(`${viaPrefix}/manifests/never-seen`).set('Accept', allManifestTypes).expect(503);
    assert.equal(envelopeCode(uncached), 'UNAVAILABLE');
    assert.match(uncached.text, /upstream central/);
    const status = (await mirror.request.get('/api/v1/mirror/status').expect(200)).body as { upstreams: Array<{ state: string; lastFailure: { reason: string } | null; circuitOpenUntil: string | null; staleServed: number }> };
    assert.equal(status.upstreams[0]!.state, 'unreachable');
    assert.match(status.upstreams[0]!.lastFailure?.reason ?? '', /500/);
    assert.ok(status.upstreams[0]!.circuitOpenUntil);
    assert.ok(status.upstreams[0]!.staleServed >= 4);
    upstream.fault = null;
    await sleep(1100);
    await getLatest().expect(200);
    assert.ok(upstream.seen.length - before > 2, 'asked again after the cool-off');
  });

  it('respects 429 and Retry-After', async () => {
    await sleep(400);
    upstream.fault = (request, response) => {
      if (!request.url?.startsWith('/v2/')) return false;
      response.writeHead(429, { 'Retry-After': '30' }).end();
      return true;
    };
    const before = upstream.seen.length;
    await getLatest().expect(200);
    const uncached = await mirror.request.get(`${viaPrefix}/manifests/other`).set('Accept', allManifestTypes).expect(503);
    assert.ok(Number(uncached.headers['retry-after']) > 20, `Retry-After ${uncached.headers['retry-after']}`);
    assert.equal(upstream.seen.length - before, 1, 'not asked again before Retry-After');
  });

  it('serves from cache when the upstream is unreachable, and says so for what it never cached', async () => {
    const fresh = await startTestUpstream();
    const image = imageManifest();
    await pushUpstream(fresh, repo, 'v1', image);
    const offline = await createTestRegistry({ mirror: mirrorConfigFor(fresh, { ttl: '1ms', timeout: '1s' }) });
    try {
      await offline.request.get(`${viaPrefix}/manifests/v1`).set('Accept', allManifestTypes).expect(200);
      for (const blob of image.blobs) await offline.request.get(`${viaPrefix}/blobs/${blob.digest}`).expect(200);
      await fresh.stop();
      const started = Date.now();
      const served = await offline.request.get(`${viaPrefix}/manifests/v1`).set('Accept', allManifestTypes).buffer(true).parse(binary).expect(200);
      assert.deepEqual(served.body, image.bytes);
      for (const blob of image.blobs) {
        const bytes = await offline.request.get(`${viaPrefix}/blobs/${blob.digest}`).buffer(true).parse(binary).expect(200);
        assert.deepEqual(bytes.body, blob.bytes);
      }
      const cachedTags = await offline.request.get(`${viaPrefix}/tags/list`).expect(200);
      assert.deepEqual((cachedTags.body as { tags: string[] }).tags, ['v1'], 'the tags it cached, while the upstream is away');
      const missing = await offline.request.get(`${viaPrefix}/blobs/${testBlob(5).digest}`).expect(503);
      assert.match(missing.text, new RegExp(`upstream central \\(${fresh.url.replace(/[.]/g, '\\.')}\\)`));
      assert.ok(Date.now() - started < 5000);
    } finally {
      await offline.close();
      await fresh.close();
    }
  });
});

describe('pull-through mirror: referrers', () => {
  let upstream: TestUpstream;
  let mirror: TestRegistry;
  let image: TestManifest;
  let signature: TestManifest;
  const signatureType = 'application/vnd.example.signature';
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  before(async () => {
    upstream = await startTestUpstream();
    image = imageManifest();
    await pushUpstream(upstream, repo, 'v1', image);
    signature = referrerOf(image, signatureType);
    await pushUpstream(upstream, repo, signature.digest, signature);
    mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { ttl: '1s', timeout: '2s' }, { failurethreshold: 100 }) });
  });
  after(async () => {
    await mirror.close();
    await upstream.close();
  });
  afterEach(() => {
    upstream.fault = null;
  });

  type Index = { mediaType: string; manifests: Array<{ digest: string; artifactType?: string }> };
  const listed = (response: { body: unknown }) => (response.body as Index).manifests.map((entry) => [entry.digest, entry.artifactType]);
  const referrersPath = (subject: string) => `/v2/${repo}/referrers/${subject}`;
  const faultOn = (subject: string, answer: (response: ServerResponse) => void) => {
    upstream.fault = (request, response) => {
      if (request.url?.split('?')[0] !== referrersPath(subject)) return false;
      answer(response);
      return true;
    };
  };

  it('lists the upstream\'s referrers of a mirrored digest, filters by artifactType, and serves them from cache for the TTL', async () => {
    const first = await mirror.request.get(`${viaPrefix}/referrers/${image.digest}`).expect(200);
    assert.equal(first.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(listed(first), [[signature.digest, signatureType]]);
    assert.equal(upstream.count('GET', referrersPath(image.digest)) > 0, true);
    const asked = upstream.count('GET', referrersPath(image.digest));
    await mirror.request.get(`${viaPrefix}/referrers/${image.digest}`).expect(200);
    assert.equal(upstream.count('GET', referrersPath(image.digest)), asked, 'fresh: no upstream request');

    const filtered = await mirror.request.get(`${viaPrefix}/referrers/${image.digest}`).query({ artifactType: signatureType }).expect(200);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(listed(filtered), [[signature.digest, signatureType]]);
    assert.deepEqual(listed(await mirror.request.get(`${viaPrefix}/referrers/${image.digest}`).query({ artifactType: 'application/other' }).expect(200)), []);

    const manifest = await mirror.request.get(`${viaPrefix}/manifests/${signature.digest}`).set('Accept', allManifestTypes).buffer(true).parse(binary).expect(200);
    assert.deepEqual(manifest.body, signature.bytes, 'the referrer itself comes through the mirror');

    const sbom = referrerOf(image, 'application/vnd.example.sbom');
    await pushUpstream(upstream, repo, sbom.digest, sbom);
    await sleep(1100);
    const later = await mirror.request.get(`${viaPrefix}/referrers/${image.digest}`).expect(200);
    assert.deepEqual(new Set(listed(later).map(([digest]) => digest)), new Set([signature.digest, sbom.digest]), 'a new referrer is seen after the TTL');
  });

  it('serves the cached list while the upstream fails, and 503 for a digest it never asked about', async () => {
    await mirror.request.get(`${viaPrefix}/referrers/${image.digest}`).expect(200);
    await sleep(1100);
    upstream.fault = (request, response) => {
      if (!request.url?.includes('/referrers/')) return false;
      response.writeHead(500).end();
      return true;
    };
    const stale = await mirror.request.get(`${viaPrefix}/referrers/${image.digest}`).expect(200);
    assert.ok(listed(stale).some(([digest]) => digest === signature.digest), 'stale-if-error');
    const never = await mirror.request.get(`${viaPrefix}/referrers/${signature.digest}`).expect(503);
    assert.equal(envelopeCode(never), 'UNAVAILABLE');
    assert.match(never.text, /upstream central/);
    assert.deepEqual(await mirror.metadata.db.selectFrom('mirror_referrers').select('subject').where('subject', '=', signature.digest).execute(), []);
  });

  it('passes on 404 from an upstream without the referrers API, so that clients fall back to the digest tag', async () => {
    const other = imageManifest();
    await pushUpstream(upstream, repo, 'v2', other);
    faultOn(other.digest, (response) => response.writeHead(404).end());
    const response = await mirror.request.get(`${viaPrefix}/referrers/${other.digest}`).expect(404);
    assert.equal(envelopeCode(response), 'NOT_FOUND');
    assert.match(response.text, new RegExp(`fall back to the tag sha256-${other.digest.slice('sha256:'.length)}`));
    assert.deepEqual(await mirror.metadata.db.selectFrom('mirror_referrers').select('subject').where('subject', '=', other.digest).execute(), []);
  });

  it('refuses a referrers answer that is not an OCI index, and keeps nothing of it', async () => {
    const other = imageManifest();
    await pushUpstream(upstream, repo, 'v3', other);
    faultOn(other.digest, (response) => response.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.index.v1+json' }).end('{"manifests": "nope"}'));
    const response = await mirror.request.get(`${viaPrefix}/referrers/${other.digest}`).expect(503);
    assert.match(response.text, /not an OCI index/);
    assert.deepEqual(await mirror.metadata.db.selectFrom('mirror_referrers').select('subject').where('subject', '=', other.digest).execute(), []);
    upstream.fault = null;
    assert.deepEqual(listed(await mirror.request.get(`${viaPrefix}/referrers/${other.digest}`).expect(200)), [], 'asked afresh once the upstream answers well');
  });
});

describe('pull-through mirror: local overrides', () => {
  it('with allowpush, content pushed under a mirrored name is local and wins over the upstream', async () => {
    const upstream = await startTestUpstream();
    const mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { allowpush: true }) });
    try {
      const fromUpstream = imageManifest();
      await pushUpstream(upstream, repo, 'v1', fromUpstream);
      const override = imageManifest();
      await pushManifest(mirror.request, `central/${repo}`, 'v1', override);
      const served = await mirror.request.get(`${viaPrefix}/manifests/v1`).set('Accept', allManifestTypes).expect(200);
      assert.equal(served.headers['docker-content-digest'], override.digest);
      assert.equal(upstream.count('GET', `/v2/${repo}/manifests/v1`), 0);
    } finally {
      await mirror.close();
      await upstream.close();
    }
  });

  it('an upstream nobody listens on: 503 whose message names the upstream and the reason, and nothing cached', async () => {
    const placeholder = createServer();
    await new Promise<void>((resolve) => placeholder.listen(0, '127.0.0.1', resolve));
    const closedPort = (placeholder.address() as AddressInfo).port;
    await new Promise<void>((resolve) => placeholder.close(() => resolve()));
    const mirror = await createTestRegistry({ mirror: { upstreams: { central: { url: `http://127.0.0.1:${closedPort}` } } } });
    try {
      const response = await mirror.request.get(`${viaPrefix}/manifests/v1`).set('Accept', allManifestTypes).expect(503);
      assert.equal(envelopeCode(response), 'UNAVAILABLE');
      assert.match(response.text, new RegExp(`upstream central \\(http://127\\.0\\.0\\.1:${closedPort}\\) cannot serve ${repo}: connect ECONNREFUSED 127\\.0\\.0\\.1:${closedPort}`));
      assert.deepEqual(await mirror.metadata.db.selectFrom('mirror_manifests').select('digest').execute(), []);
      assert.deepEqual(await mirror.metadata.db.selectFrom('mirror_tags').select('tag').execute(), []);
    } finally {
      await mirror.close();
    }
  });

  it('a loop of two mirrors ends at once in an error, with 508 between them', async () => {
    const placeholder = createServer();
    await new Promise<void>((resolve) => placeholder.listen(0, '127.0.0.1', resolve));
    const firstPort = (placeholder.address() as AddressInfo).port;
    await new Promise<void>((resolve) => placeholder.close(() => resolve()));
    const upstreamOf = (port: number) => ({ default: 'next', upstreams: { next: { url: `http://127.0.0.1:${port}`, timeout: '5s' } } });
    const second = await createTestRegistry({ mirror: upstreamOf(firstPort) });
    const { port: secondPort } = await second.listen();
    const first = await createTestRegistry({ mirror: upstreamOf(secondPort) });
    await first.listen(firstPort);
    try {
      const response = await first.request.get('/v2/somebody/app/manifests/v1').set('Accept', allManifestTypes).expect(503);
      assert.match(response.text, /request loop/, 'the upstream\'s own message is passed on');
      const status = (await second.request.get('/api/v1/mirror/status').expect(200)).body as { upstreams: Array<{ lastFailure: { reason: string } | null }> };
      assert.match(status.upstreams[0]!.lastFailure?.reason ?? '', /508/);
    } finally {
      await first.close();
      await second.close();
    }
  });
});

describe('an offline site: cached pulls are not a warning each', () => {
  let upstream: TestUpstream;
  let mirror: TestRegistry;
  const clock = new ManualClock();
  const lines: Array<{ level: number; msg: string }> = [];
  const image = imageManifest();
  before(async () => {
    upstream = await startTestUpstream();
    await pushUpstream(upstream, repo, 'v1', image);
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as { level: number; msg: string });
        callback();
      },
    });
    mirror = await createTestRegistry({ clock, logger: pino({ level: 'debug' }, sink), mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**'], ttl: '1m' }) });
  });
  after(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('a stale answer is a warning once per tag per hour, debug lines between', async () => {
    const pull = () => mirror.request.get(`${viaPrefix}/manifests/v1`).set('Accept', allManifestTypes).expect(200);
    await pull();
    await upstream.stop();
    const stale = (level: number) => lines.filter((line) => line.msg === 'served a stale mirrored tag' && line.level === level).length;
    clock.advance(2 * 60_000);
    for (let attempt = 0; attempt < 5; attempt++) {
      assert.equal((await pull()).headers['docker-content-digest'], image.digest);
      clock.advance(60_000);
    }
    assert.deepEqual([stale(40), stale(20)], [1, 4], 'one warning, then debug lines');
    clock.advance(staleWarningEveryMs);
    await pull();
    assert.deepEqual([stale(40), stale(20)], [2, 4], 'an hour later, the next warning');
  });
});
