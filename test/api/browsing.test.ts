import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { fetchToken, passwords, writeTestPolicy } from '../helpers/auth.js';
import { testBlob } from '../helpers/blobs.js';
import { imageManifest, indexOf, pushManifest, type TestManifest } from '../helpers/images.js';
import { envelopeCode } from '../helpers/push.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { findRepository } from '../../src/metadata/repositories.js';
import { markTagsPulled } from '../../src/metadata/tags.js';

interface RepositoryJson {
  name: string;
  source: 'local' | 'mirror';
  upstream: string | null;
  tags: number;
  size: number;
  pushedAt: number | null;
  pushedBy: string | null;
}

interface TagJson {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  platforms: string[];
  pushedAt: number;
  pushedBy: string | null;
  pulledAt: number | null;
}

function nextPath(response: supertest.Response): string | undefined {
  const link = response.headers.link as string | undefined;
  return link ? /^<([^>]+)>; rel="next"$/.exec(link)?.[1] : undefined;
}

/** Every page of a listing, following Link; the pages' sizes too. */
async function allPages<T>(request: supertest.Agent, first: string, key: string): Promise<{ rows: T[]; pages: number[] }> {
  const rows: T[] = [];
  const pages: number[] = [];
  let path: string | undefined = first;
  while (path) {
    const response = await request.get(path).expect(200);
    const page = (response.body as Record<string, T[]>)[key]!;
    rows.push(...page);
    pages.push(page.length);
    path = nextPath(response);
  }
  return { rows, pages };
}

const manifestBytes = (manifest: TestManifest) => manifest.bytes.length;
const blobBytes = (manifest: TestManifest) => manifest.blobs.reduce((sum, blob) => sum + blob.bytes.length, 0);

function browsingSuite(engine: 'sqlite' | 'postgres'): void {
  describe(`web UI listings (/api/v1/repositories…) on ${engine}`, async () => {
    const skip = engine === 'postgres' ? await postgresSkipReason() : undefined;
    let registry: TestRegistry;
    let database: { url: string; drop(): Promise<void> } | undefined;
    const sharedConfig = testBlob(180);
    const first = imageManifest({ config: sharedConfig, layerSize: 5000 });
    const second = imageManifest({ config: sharedConfig, layerSize: 7000 });
    const arm = imageManifest({ layerSize: 900 });
    const multi = indexOf([
      { manifest: first, architecture: 'amd64' },
      { manifest: arm, architecture: 'arm64' },
    ]);

    before(async () => {
      if (skip) return;
      database = engine === 'postgres' ? await createTestDatabase() : undefined;
      registry = await createTestRegistry(database ? { databaseUrl: database.url } : {});
      // Pushed in this order, a few milliseconds apart: other/tool, team/app (three tags and an index), team/my_base.
      await pushManifest(registry.request, 'other/tool', 'v1', imageManifest({ layerSize: 100 }));
      await new Promise((resolve) => setTimeout(resolve, 5));
      await pushManifest(registry.request, 'team/app', 'v1.0', first);
      await pushManifest(registry.request, 'team/app', 'v1.1', second);
      await pushManifest(registry.request, 'team/app', 'latest', second);
      await pushManifest(registry.request, 'team/app', 'arm', arm);
      await pushManifest(registry.request, 'team/app', 'multi', multi);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await pushManifest(registry.request, 'team/my_base', 'v1', imageManifest({ layerSize: 50 }));
      // A repository with rows but no manifest (an upload only) is not listed, as in the catalog.
      await registry.request.post('/v2/team/empty/blobs/uploads/').expect(202);
    });
    after(async () => {
      await registry?.close();
      await database?.drop();
    });

    it('lists repositories by name with tag counts, sizes (shared blobs once) and the last push', { skip }, async () => {
      const response = await registry.request.get('/api/v1/repositories').expect(200);
      const repositories = (response.body as { repositories: RepositoryJson[] }).repositories;
      assert.deepEqual(
        repositories.map((row) => [row.name, row.tags]),
        [
          ['other/tool', 1],
          ['team/app', 5],
          ['team/my_base', 1],
        ],
      );
      const app = repositories[1]!;
      const expectedSize =
        manifestBytes(first) + manifestBytes(second) + manifestBytes(arm) + manifestBytes(multi) + sharedConfig.bytes.length + blobBytes(first) - sharedConfig.bytes.length + blobBytes(second) - sharedConfig.bytes.length + blobBytes(arm);
      assert.equal(app.size, expectedSize);
      assert.equal(app.pushedBy, 'anonymous');
      assert.ok(app.pushedAt !== null && Math.abs(app.pushedAt - Date.now()) < 60_000);
    });

    it('sorts by last push, newest first (never pushed by tag last), and pages with n and last in that order', { skip }, async () => {
      // Pushed by digest only: a manifest and no tag, so no push time.
      const untagged = imageManifest({ layerSize: 64 });
      await pushManifest(registry.request, 'aa/untagged', untagged.digest, untagged);
      const { rows, pages } = await allPages<RepositoryJson>(registry.request, '/api/v1/repositories?sort=pushed&n=2', 'repositories');
      assert.deepEqual(
        rows.map((row) => row.name),
        ['team/my_base', 'team/app', 'other/tool', 'aa/untagged'],
      );
      assert.deepEqual(pages, [2, 2]);
      assert.deepEqual(rows.at(-1), { name: 'aa/untagged', source: 'local', upstream: null, tags: 0, size: untagged.bytes.length + blobBytes(untagged), pushedAt: null, pushedBy: null });
      const oneByOne = await allPages<RepositoryJson>(registry.request, '/api/v1/repositories?sort=pushed&n=1', 'repositories');
      assert.deepEqual(oneByOne.rows.map((row) => row.name), rows.map((row) => row.name));
      const byName = await allPages<RepositoryJson>(registry.request, '/api/v1/repositories?n=1', 'repositories');
      assert.deepEqual(byName.rows.map((row) => row.name), ['aa/untagged', 'other/tool', 'team/app', 'team/my_base']);
      // A push moves a repository to the front.
      await pushManifest(registry.request, 'other/tool', 'v2', imageManifest({ layerSize: 120 }));
      const moved = await registry.request.get('/api/v1/repositories?sort=pushed').expect(200);
      assert.equal((moved.body as { repositories: RepositoryJson[] }).repositories[0]!.name, 'other/tool');
    });

    it('searches names by substring, `_` matching only itself', { skip }, async () => {
      const team = await registry.request.get('/api/v1/repositories?q=TEAM').expect(200);
      assert.deepEqual(
        (team.body as { repositories: RepositoryJson[] }).repositories.map((row) => row.name),
        ['team/app', 'team/my_base'],
      );
      const underscore = await registry.request.get('/api/v1/repositories?q=y_b').expect(200);
      assert.deepEqual(
        (underscore.body as { repositories: RepositoryJson[] }).repositories.map((row) => row.name),
        ['team/my_base'],
      );
      const notWildcard = await registry.request.get('/api/v1/repositories?q=m_a').expect(200);
      assert.deepEqual((notWildcard.body as { repositories: RepositoryJson[] }).repositories, []);
    });

    it('lists a repository’s tags with digest, media type, pulled size and platforms', { skip }, async () => {
      const response = await registry.request.get('/api/v1/repositories/team/app/tags').expect(200);
      const tags = (response.body as { name: string; tags: TagJson[] }).tags;
      assert.deepEqual(
        tags.map((row) => row.name),
        ['arm', 'latest', 'multi', 'v1.0', 'v1.1'],
      );
      const byName = new Map(tags.map((row) => [row.name, row]));
      assert.equal(byName.get('v1.0')!.digest, first.digest);
      assert.equal(byName.get('v1.0')!.mediaType, first.mediaType);
      assert.equal(byName.get('v1.0')!.size, manifestBytes(first) + blobBytes(first));
      assert.deepEqual(byName.get('v1.0')!.platforms, []);
      const index = byName.get('multi')!;
      assert.equal(index.digest, multi.digest);
      assert.deepEqual(index.platforms, ['linux/amd64', 'linux/arm64']);
      assert.equal(index.size, manifestBytes(multi) + manifestBytes(first) + blobBytes(first) + manifestBytes(arm) + blobBytes(arm));
      assert.equal(index.pushedBy, 'anonymous');
      assert.equal(index.pulledAt, null);
    });

    it('shows the last pull of a tag once the pull recorder has written it (audit.pulls)', { skip }, async () => {
      const repository = await findRepository(registry.metadata.db, 'team/app');
      const pulledAt = Date.now() - 60_000;
      await markTagsPulled(registry.metadata.db, repository!.id, ['latest'], pulledAt);
      const tags = ((await registry.request.get('/api/v1/repositories/team/app/tags?glob=latest').expect(200)).body as { tags: TagJson[] }).tags;
      assert.deepEqual(tags.map((row) => [row.name, row.pulledAt]), [['latest', pulledAt]]);
    });

    it('filters tags by glob (case-sensitive, `?` one character) and pages them', { skip }, async () => {
      const glob = async (pattern: string) =>
        ((await registry.request.get(`/api/v1/repositories/team/app/tags?glob=${encodeURIComponent(pattern)}`).expect(200)).body as { tags: TagJson[] }).tags.map((row) => row.name);
      assert.deepEqual(await glob('v1.*'), ['v1.0', 'v1.1']);
      assert.deepEqual(await glob('v1.?'), ['v1.0', 'v1.1']);
      assert.deepEqual(await glob('*a*'), ['arm', 'latest']);
      assert.deepEqual(await glob('LATEST'), []);
      assert.deepEqual(await glob('v1_0'), []);
      const { rows, pages } = await allPages<TagJson>(registry.request, '/api/v1/repositories/team/app/tags?n=2', 'tags');
      assert.deepEqual(
        rows.map((row) => row.name),
        ['arm', 'latest', 'multi', 'v1.0', 'v1.1'],
      );
      assert.deepEqual(pages, [2, 2, 1]);
    });

    it('refuses bad parameters with the error catalogue, and an unknown repository with NAME_UNKNOWN', { skip }, async () => {
      assert.equal(envelopeCode(await registry.request.get('/api/v1/repositories?sort=size').expect(400)), 'PARAMETER_INVALID');
      assert.equal(envelopeCode(await registry.request.get('/api/v1/repositories?n=ten').expect(400)), 'PAGINATION_NUMBER_INVALID');
      assert.equal(envelopeCode(await registry.request.get(`/api/v1/repositories/team/app/tags?glob=${'x'.repeat(129)}`).expect(400)), 'PARAMETER_INVALID');
      assert.equal(envelopeCode(await registry.request.get('/api/v1/repositories/no/such/tags').expect(404)), 'NAME_UNKNOWN');
      assert.equal(envelopeCode(await registry.request.get('/api/v1/repositories/Bad..Name/tags').expect(400)), 'NAME_INVALID');
    });
  });
}

browsingSuite('sqlite');
browsingSuite('postgres');

describe('web UI listings with token auth', () => {
  let registry: TestRegistry;
  before(async () => {
    const files = await writeTestPolicy();
    registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
    const push = await fetchToken(registry.request, ['alice', passwords.alice], ['repository:team-a/web:pull,push']);
    await pushManifest(supertest.agent(registry.registry.app.callback()).set('Authorization', `Bearer ${push}`), 'team-a/web', 'v1', imageManifest());
    const robotPush = await fetchToken(registry.request, ['robot$ci', passwords.robot], ['repository:team-b/ci:pull,push']);
    await pushManifest(supertest.agent(registry.registry.app.callback()).set('Authorization', `Bearer ${robotPush}`), 'team-b/ci', 'v1', imageManifest());
    const publicPush = await fetchToken(registry.request, ['alice', passwords.alice], ['repository:public/tools:pull,push']);
    await pushManifest(supertest.agent(registry.registry.app.callback()).set('Authorization', `Bearer ${publicPush}`), 'public/tools', 'v1', imageManifest());
  });
  after(async () => registry.close());

  it('the catalog grant lists every repository; an account without it, the ones it may pull; tags need pull on the repository; pushedBy names the account', async () => {
    const catalog = await fetchToken(registry.request, ['alice', passwords.alice], ['registry:catalog:*']);
    const listed = await registry.request.get('/api/v1/repositories').set('Authorization', `Bearer ${catalog}`).expect(200);
    assert.deepEqual((listed.body as { repositories: RepositoryJson[] }).repositories.map((row) => [row.name, row.pushedBy]), [['public/tools', 'alice'], ['team-a/web', 'alice'], ['team-b/ci', 'robot$ci']]);
    const challenged = await registry.request.get('/api/v1/repositories').expect(401);
    assert.match(String(challenged.headers['www-authenticate']), /scope="registry:catalog:\*"/, 'a client following the challenge asks for the catalog');
    const names = async (token: string) =>
      ((await registry.request.get('/api/v1/repositories').set('Authorization', `Bearer ${token}`).expect(200)).body as { repositories: RepositoryJson[] }).repositories.map((row) => row.name);
    // bob may pull team-a/**, the robot team-b/**, anybody public/**; none has the catalog grant.
    assert.deepEqual(await names(await fetchToken(registry.request, ['bob', passwords.bob], ['registry:catalog:*'])), ['public/tools', 'team-a/web']);
    assert.deepEqual(await names(await fetchToken(registry.request, ['robot$ci', passwords.robot], [])), ['public/tools', 'team-b/ci']);
    assert.deepEqual(await names(await fetchToken(registry.request, null, ['registry:catalog:*'])), ['public/tools']);
    assert.deepEqual(await names(await fetchToken(registry.request, ['dave', passwords.dave], [])), ['public/tools'], 'dave may pull only central/team-a/** and public/**');
    const bobPull = await fetchToken(registry.request, ['bob', passwords.bob], ['repository:team-a/web:pull']);
    const tags = await registry.request.get('/api/v1/repositories/team-a/web/tags').set('Authorization', `Bearer ${bobPull}`).expect(200);
    assert.deepEqual((tags.body as { tags: TagJson[] }).tags.map((row) => [row.name, row.pushedBy]), [['v1', 'alice']]);
    const tagChallenge = await registry.request.get('/api/v1/repositories/team-a/web/tags').expect(401);
    assert.match(String(tagChallenge.headers['www-authenticate']), /scope="repository:team-a\/web:pull"/);
  });

  it('a listing narrowed by grants still pages through every repository the account may pull', async () => {
    const bob = await fetchToken(registry.request, ['bob', passwords.bob], []);
    const agent = supertest.agent(registry.registry.app.callback()).set('Authorization', `Bearer ${bob}`);
    const { rows, pages } = await allPages<RepositoryJson>(agent, '/api/v1/repositories?n=1', 'repositories');
    assert.deepEqual(rows.map((row) => row.name), ['public/tools', 'team-a/web']);
    assert.deepEqual(pages, [1, 1]);
  });
});

describe('the repository API reads one way: repository names ending in tags, history and restore', () => {
  let registry: TestRegistry;
  const pushed = new Map<string, TestManifest>();
  before(async () => {
    registry = await createTestRegistry();
    // x/tags and x/history are repositories; x has a tag named tags, x/tags a tag named history.
    for (const [repository, tag] of [['x', 'tags'], ['x/tags', 'history'], ['x/tags', 'v1'], ['x/history', 'v1'], ['x/restore', 'v1']] as const) {
      const manifest = imageManifest();
      await pushManifest(registry.request, repository, tag, manifest);
      pushed.set(`${repository}:${tag}`, manifest);
    }
  });
  after(async () => registry?.close());

  it('with /-/ after the name, every path means one thing', async () => {
    const rows = async (repository: string) => ((await registry.request.get(`/api/v1/repositories/${repository}/-/tags`).expect(200)).body as { tags: TagJson[] }).tags.map((tag) => tag.name).sort();
    assert.deepEqual(await rows('x/tags'), ['history', 'v1']);
    assert.deepEqual(await rows('x'), ['tags']);
    assert.deepEqual(await rows('x/history'), ['v1']);
    assert.deepEqual(await rows('x/restore'), ['v1']);
    const at = await registry.request.get('/api/v1/repositories/x/-/tags/tags').expect(200);
    assert.equal((at.body as { digest: string }).digest, pushed.get('x:tags')!.digest, 'x:tags at this moment');
    const history = await registry.request.get('/api/v1/repositories/x/tags/-/tags/history/history').expect(200);
    assert.equal((history.body as { periods: Array<{ digest: string }> }).periods[0]?.digest, pushed.get('x/tags:history')!.digest);
    const restored = await registry.request.post('/api/v1/repositories/x/restore/-/tags/v1/restore').send({ digest: pushed.get('x/restore:v1')!.digest }).expect(200);
    assert.equal((restored.body as { name: string }).name, 'x/restore');
  });

  it('the first form without /-/ still serves a path only one route reads, and refuses one two routes read, naming the /-/ form', async () => {
    const rows = await registry.request.get('/api/v1/repositories/x/history/tags').expect(200);
    assert.deepEqual((rows.body as { tags: TagJson[] }).tags.map((tag) => tag.name), ['v1']);
    await registry.request.get('/api/v1/repositories/x/restore/tags/v1/history').expect(200);
    for (const path of ['/api/v1/repositories/x/tags/tags', '/api/v1/repositories/x/tags/tags/history']) {
      const refused = await registry.request.get(path).expect(400);
      assert.equal(envelopeCode(refused), 'NAME_INVALID', path);
      assert.match(String((refused.body as { errors: Array<{ message: string }> }).errors[0]?.message), /can be read as .* or as .*: put \/-\/ after the repository name/);
    }
  });
});
