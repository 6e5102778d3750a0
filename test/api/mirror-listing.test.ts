import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import type { RepositorySummary } from '../../src/registry/browsing.js';
import { fetchToken, passwords, writeTestPolicy } from '../helpers/auth.js';
import { allManifestTypes, imageManifest, pushManifest, type TestManifest } from '../helpers/images.js';
import { envelopeCode } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { mirrorConfigFor, startTestUpstream, type TestUpstream } from '../helpers/upstream.js';

/** The JSON of a repository row: the service's summary, times as milliseconds. */
type RepositoryJson = RepositorySummary;

const bytesOf = (manifest: TestManifest) => manifest.bytes.length + manifest.blobs.reduce((sum, blob) => sum + blob.bytes.length, 0);

/** Pulls an image through the mirror as docker would: the manifest by tag, then each blob. */
async function pullThrough(request: supertest.Agent, name: string, tag: string, manifest: TestManifest): Promise<void> {
  await request.get(`/v2/${name}/manifests/${tag}`).set('Accept', allManifestTypes).expect(200);
  for (const blob of manifest.blobs) await request.get(`/v2/${name}/blobs/${blob.digest}`).expect(200);
}

async function listed(request: supertest.Agent, query = ''): Promise<RepositoryJson[]> {
  return ((await request.get(`/api/v1/repositories${query}`).expect(200)).body as { repositories: RepositoryJson[] }).repositories;
}

/** An operator checks what the mirror cache holds, beside what was pushed here. */
describe('cached repositories are listed under the names clients pull them by', () => {
  let upstream: TestUpstream;
  let mirror: TestRegistry;
  const app = imageManifest({ layerSize: 3000 });
  const tools = imageManifest({ layerSize: 1000 });
  before(async () => {
    upstream = await startTestUpstream();
    for (const [repository, manifest] of [['team-a/app', app], ['team-a/tools', tools]] as const) {
      const agent = await upstream.pusher([`repository:${repository}:pull,push`]);
      await pushManifest(agent, repository, 'v1', manifest);
    }
    mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**'] }) });
    await pullThrough(mirror.request, 'central/team-a/app', 'v1', app);
    await pullThrough(mirror.request, 'central/team-a/tools', 'v1', tools);
    await pushManifest(mirror.request, 'aa/local', 'v1', imageManifest());
    await pushManifest(mirror.request, 'zz/local', 'v1', imageManifest());
  });
  after(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('local and cached repositories in one list by name, each with its source, upstream, tags and size', async () => {
    const rows = await listed(mirror.request);
    assert.deepEqual(
      rows.map((row) => [row.name, row.source, row.upstream, row.tags]),
      [
        ['aa/local', 'local', null, 1],
        ['central/team-a/app', 'mirror', 'central', 1],
        ['central/team-a/tools', 'mirror', 'central', 1],
        ['zz/local', 'local', null, 1],
      ],
    );
    assert.equal(rows[1]!.size, bytesOf(app), 'the cached manifest and the blobs pulled');
    assert.ok(rows[1]!.pushedAt !== null, 'when the cache set its tag');
  });

  it('filters by source and by text in either part of the name, and pages across both sources in either order', async () => {
    assert.deepEqual((await listed(mirror.request, '?source=mirror')).map((row) => row.name), ['central/team-a/app', 'central/team-a/tools']);
    assert.deepEqual((await listed(mirror.request, '?source=local')).map((row) => row.name), ['aa/local', 'zz/local']);
    assert.deepEqual((await listed(mirror.request, '?q=central')).map((row) => row.name), ['central/team-a/app', 'central/team-a/tools']);
    assert.deepEqual((await listed(mirror.request, '?q=tools')).map((row) => row.name), ['central/team-a/tools']);
    for (const sort of ['name', 'pushed']) {
      const everything = (await listed(mirror.request, `?sort=${sort}`)).map((row) => row.name);
      const paged: string[] = [];
      let path: string | undefined = `/api/v1/repositories?sort=${sort}&n=1`;
      while (path) {
        const response: supertest.Response = await mirror.request.get(path).expect(200);
        paged.push(...(response.body as { repositories: RepositoryJson[] }).repositories.map((row) => row.name));
        path = /^<([^>]+)>; rel="next"$/.exec(String(response.headers.link ?? ''))?.[1];
      }
      assert.deepEqual(paged, everything, `pages by ${sort}`);
      assert.equal(everything.length, 4);
    }
    assert.deepEqual((await listed(mirror.request, '?sort=pushed')).slice(0, 2).map((row) => row.name), ['zz/local', 'aa/local'], 'newest first');
    assert.equal(envelopeCode(await mirror.request.get('/api/v1/repositories?source=remote').expect(400)), 'PARAMETER_INVALID');
  });

  it('the catalog lists the cache too, as Distribution\'s proxy does, paged in one order', async () => {
    const all = (await mirror.request.get('/v2/_catalog').expect(200)).body as { repositories: string[] };
    assert.deepEqual(all.repositories, ['aa/local', 'central/team-a/app', 'central/team-a/tools', 'zz/local']);
    const paged: string[] = [];
    let path: string | undefined = '/v2/_catalog?n=1';
    while (path) {
      const response: supertest.Response = await mirror.request.get(path).expect(200);
      paged.push(...(response.body as { repositories: string[] }).repositories);
      path = /^<([^>]+)>; rel="next"$/.exec(String(response.headers.link ?? ''))?.[1];
    }
    assert.deepEqual(paged, all.repositories);
  });

  it('a cached repository\'s tags, by the name clients pull it by', async () => {
    const tags = (await mirror.request.get('/api/v1/repositories/central/team-a/app/-/tags').expect(200)).body as { name: string; tags: Array<{ name: string; digest: string; size: number; mediaType: string }> };
    assert.deepEqual(
      tags.tags.map((row) => [row.name, row.digest, row.size, row.mediaType]),
      [['v1', app.digest, bytesOf(app), app.mediaType]],
    );
    assert.equal(envelopeCode(await mirror.request.get('/api/v1/repositories/central/team-a/never/-/tags').expect(404)), 'NAME_UNKNOWN');
  });
});

describe('cached repositories with auth: listed to those who may pull them', () => {
  let upstream: TestUpstream;
  let mirror: TestRegistry;
  let files: Awaited<ReturnType<typeof writeTestPolicy>>;
  before(async () => {
    upstream = await startTestUpstream();
    const image = imageManifest();
    await pushManifest(await upstream.pusher(['repository:team-a/app:pull,push']), 'team-a/app', 'v1', image);
    files = await writeTestPolicy();
    mirror = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**'] }), auth: { mode: 'token', policy: files.policy } });
    const dave = await fetchToken(mirror.request, ['dave', passwords.dave], ['repository:central/team-a/app:pull']);
    await mirror.request.get('/v2/central/team-a/app/manifests/v1').set('Authorization', `Bearer ${dave}`).set('Accept', allManifestTypes).expect(200);
  });
  after(async () => {
    await mirror?.close();
    await upstream?.close();
    if (files) await rm(files.directory, { recursive: true, force: true });
  });

  it('dave, who may pull central/team-a/**, sees the cached repository; bob, who may pull only the local team-a/**, does not', async () => {
    const names = async (credentials: [string, string]) => {
      const token = await fetchToken(mirror.request, credentials, ['registry:catalog:*']);
      return (await listed(supertest.agent(mirror.registry.app.callback()).set('Authorization', `Bearer ${token}`))).map((row) => row.name);
    };
    assert.deepEqual(await names(['dave', passwords.dave]), ['central/team-a/app']);
    assert.deepEqual(await names(['bob', passwords.bob]), []);
    assert.deepEqual(await names(['alice', passwords.alice]), ['central/team-a/app'], 'alice has the catalog grant');
  });
});
