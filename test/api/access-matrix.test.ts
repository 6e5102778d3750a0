import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { basic, passwords, writeTestPolicy } from '../helpers/auth.js';
import { testBlob } from '../helpers/blobs.js';
import { freePort } from '../helpers/ports.js';
import { allManifestTypes, imageManifest, pushManifest } from '../helpers/images.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

type Who = 'anonymous' | 'alice' | 'bob' | 'carol' | 'robot$ci' | 'olga' | 'loader' | 'dave';
const everyone: Who[] = ['anonymous', 'alice', 'bob', 'carol', 'robot$ci', 'olga', 'loader', 'dave'];

const secretOf: Record<Exclude<Who, 'anonymous'>, string> = {
  alice: passwords.alice,
  bob: passwords.bob,
  carol: passwords.carol,
  'robot$ci': passwords.robot,
  olga: passwords.olga,
  loader: passwords.loader,
  dave: passwords.dave,
};

/**
 * Who may call what, for every account of the test policy (see helpers/auth.ts) and every kind of
 * endpoint: a request that passes answers what the endpoint answers (200, 202, 404…); one that does
 * not is 401 without credentials and 403 with them. Statuses not listed for a row are a refusal.
 */
describe('the access matrix: every account against every kind of endpoint', () => {
  let registry: TestRegistry;
  let directory: string;
  const unknownDigest = testBlob(10).digest;
  const rows: Array<{ what: string; call: (agent: supertest.Agent) => supertest.Test; passes: Partial<Record<Who, number>> }> = [
    { what: 'GET /v2/', call: (a) => a.get('/v2/'), passes: { alice: 200, bob: 200, carol: 200, 'robot$ci': 200, olga: 200, loader: 200, dave: 200 } },
    { what: 'pull team-a/app', call: (a) => a.get('/v2/team-a/app/tags/list'), passes: { alice: 200, bob: 200, carol: 200 } },
    // Anonymous requests may pull public/**: so may every signed-in account.
    {
      what: 'pull public/x',
      call: (a) => a.head('/v2/public/x/manifests/v1').set('Accept', allManifestTypes),
      passes: { anonymous: 200, alice: 200, bob: 200, carol: 200, 'robot$ci': 200, olga: 200, loader: 200, dave: 200 },
    },
    { what: 'push team-a/app', call: (a) => a.post('/v2/team-a/app/blobs/uploads/'), passes: { alice: 202 } },
    { what: 'push team-b/svc', call: (a) => a.post('/v2/team-b/svc/blobs/uploads/'), passes: { 'robot$ci': 202 } },
    { what: 'push public/x', call: (a) => a.post('/v2/public/x/blobs/uploads/'), passes: { alice: 202 } },
    { what: 'delete in team-a/app', call: (a) => a.delete(`/v2/team-a/app/manifests/${unknownDigest}`), passes: { alice: 404 } },
    { what: 'delete in team-b/svc', call: (a) => a.delete(`/v2/team-b/svc/manifests/${unknownDigest}`), passes: {} },
    { what: 'catalog', call: (a) => a.get('/v2/_catalog'), passes: { alice: 200, olga: 200 } },
    // Everyone: the catalog grant lists everything, anything less what it may pull (the test below).
    {
      what: 'repository list (UI)',
      call: (a) => a.get('/api/v1/repositories'),
      passes: { anonymous: 200, alice: 200, bob: 200, carol: 200, 'robot$ci': 200, olga: 200, loader: 200, dave: 200 },
    },
    { what: 'audit events', call: (a) => a.get('/api/v1/audit/events'), passes: { alice: 200 } },
    { what: 'tag history', call: (a) => a.get('/api/v1/repositories/team-a/app/-/tags/v1/history'), passes: { alice: 200 } },
    { what: 'restore a tag', call: (a) => a.post('/api/v1/repositories/team-a/app/-/tags/v1/restore').send({ digest: unknownDigest }), passes: { alice: 404 } },
    { what: 'GC runs', call: (a) => a.get('/api/v1/gc'), passes: { olga: 200 } },
    { what: 'GC dry run', call: (a) => a.post('/api/v1/gc?dryrun=maybe'), passes: { olga: 400 } },
    { what: 'retention dry run', call: (a) => a.post('/api/v1/retention?dryrun=true'), passes: { alice: 200, olga: 200 } },
    { what: 'retention run', call: (a) => a.post('/api/v1/retention?dryrun=false'), passes: { olga: 200 } },
    { what: 'webhook status', call: (a) => a.get('/api/v1/notifications/status'), passes: { olga: 200 } },
    { what: 'mirror status', call: (a) => a.get('/api/v1/mirror/status'), passes: { alice: 200, olga: 200 } },
    { what: 'mirror cache: blob status', call: (a) => a.get(`/api/v1/mirror/cache/team-a/app/blobs/${unknownDigest}?ns=central`), passes: { loader: 404, dave: 404 } },
    {
      what: 'mirror cache: put a manifest',
      call: (a) => a.put('/api/v1/mirror/cache/team-a/app/manifests/v1?ns=central').set('Content-Type', 'application/vnd.oci.image.manifest.v1+json').send('{}'),
      passes: { loader: 400, dave: 400 },
    },
    // dave may push central/team-a/**; a push through the distribution API into a mirrored name is still no push.
    { what: 'push into a mirrored name', call: (a) => a.post('/v2/central/team-a/app/blobs/uploads/'), passes: { dave: 405 } },
  ];

  before(async () => {
    const files = await writeTestPolicy();
    directory = files.directory;
    registry = await createTestRegistry({
      auth: { mode: 'htpasswd', policy: files.policy, htpasswd: { path: files.htpasswd } },
      mirror: { upstreams: { central: { url: `http://127.0.0.1:${await freePort()}`, prefix: 'central', repositories: ['team-a/**'] } } },
      retention: { policies: [{ repositories: ['nothing/**'], keep: { mostRecent: 1 } }] },
    });
    const as = (who: Exclude<Who, 'anonymous'>) => supertest.agent(registry.registry.app.callback()).set('Authorization', basic(who, secretOf[who]));
    await pushManifest(as('alice'), 'team-a/app', 'v1', imageManifest());
    await pushManifest(as('alice'), 'public/x', 'v1', imageManifest());
    await pushManifest(as('robot$ci'), 'team-b/svc', 'v1', imageManifest());
  });
  after(async () => {
    await registry?.close();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it(`answers each of ${rows.length} kinds of request as the policy says, for each of ${everyone.length} callers`, async () => {
    const wrong: string[] = [];
    for (const row of rows) {
      for (const who of everyone) {
        const agent = supertest.agent(registry.registry.app.callback());
        if (who !== 'anonymous') agent.set('Authorization', basic(who, secretOf[who]));
        const status = (await row.call(agent)).status;
        const expected = row.passes[who] ?? (who === 'anonymous' ? 401 : 403);
        if (status !== expected) wrong.push(`${row.what} as ${who}: ${status}, expected ${expected}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('the repository list shows each caller what it may pull, and everything to the catalog grant', async () => {
    const sees: Record<Who, string[]> = {
      anonymous: ['public/x'],
      alice: ['public/x', 'team-a/app', 'team-b/svc'],
      bob: ['public/x', 'team-a/app'],
      carol: ['public/x', 'team-a/app', 'team-b/svc'],
      'robot$ci': ['public/x', 'team-b/svc'],
      olga: ['public/x', 'team-a/app', 'team-b/svc'],
      loader: ['public/x'],
      dave: ['public/x'],
    };
    for (const who of everyone) {
      const agent = supertest.agent(registry.registry.app.callback());
      if (who !== 'anonymous') agent.set('Authorization', basic(who, secretOf[who]));
      const listed = ((await agent.get('/api/v1/repositories').expect(200)).body as { repositories: Array<{ name: string }> }).repositories.map((row) => row.name);
      assert.deepEqual(listed, sees[who], who);
    }
  });
});
