import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readSyncList, syncImages } from '../../src/mirror/sync.js';
import { exportImages, type ExportSummary } from '../../src/transfer/export.js';
import { HttpImportTarget } from '../../src/transfer/http-target.js';
import { importArchive, ImportError } from '../../src/transfer/import.js';
import { bundleDescriptionName, tagSeenAnnotation, type BundleDescription } from '../../src/transfer/layout.js';
import { LocalImportTarget } from '../../src/transfer/local-target.js';
import { listTarEntries, readTarEntryBytes } from '../../src/transfer/tar.js';
import { fetchToken, passwords, writeTestPolicy } from '../helpers/auth.js';
import { rawTarHeader, rewriteArchive } from '../helpers/archives.js';
import { testBlob } from '../helpers/blobs.js';
import { allManifestTypes, imageManifest, indexOf, manifestOf, ociManifestType, pushManifest, referrerOf, type TestManifest } from '../helpers/images.js';
import { binary, envelopeCode } from '../helpers/push.js';
import { freePort } from '../helpers/ports.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { mirrorConfigFor, startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { ManualClock } from '../helpers/clock.js';

const storesOf = (registry: TestRegistry) => registry.stores;
const upstreamsOf = (registry: TestRegistry) => registry.registry.services.mirror?.settings.upstreams ?? [];
/** `registry import` into a registry's stores, with the services its composition root built. */
const localTarget = (registry: TestRegistry) =>
  new LocalImportTarget(storesOf(registry), registry.registry.services.manifests, registry.registry.services.mirrorCache, upstreamsOf(registry));

const unreachable = `http://127.0.0.1:${await freePort()}`;

/** An offline site's mirror section: the upstream `central` by name, at a port nothing listens on. */
const offlineMirror = (extra: Record<string, unknown> = {}) => ({
  default: 'central',
  failurethreshold: 1,
  cooloff: '1m',
  upstreams: { central: { url: unreachable, prefix: 'central', timeout: '2s', repositories: ['team-a/**'], ...extra } },
});

async function readArchive(file: string): Promise<{ index: { manifests: Array<{ digest: string; annotations?: Record<string, string> }> }; bundle: BundleDescription; names: string[] }> {
  const handle = await open(file, 'r');
  try {
    const entries = await listTarEntries(handle);
    const read = async (name: string) => JSON.parse((await readTarEntryBytes(handle, entries.find((entry) => entry.name === name)!)).toString('utf8')) as unknown;
    return { index: (await read('index.json')) as never, bundle: (await read(bundleDescriptionName)) as BundleDescription, names: entries.map((entry) => entry.name) };
  } finally {
    await handle.close();
  }
}

async function mirrorRows(registry: TestRegistry) {
  const db = registry.metadata.db;
  return {
    tags: await db.selectFrom('mirror_tags').select(['upstream', 'repository', 'tag', 'digest', 'checked_at']).orderBy('tag').execute(),
    history: await db.selectFrom('audit_events').select(['repository', 'tag', 'from_digest', 'to_digest', 'action']).where('upstream', 'is not', null).orderBy('id').execute(),
    manifests: (await db.selectFrom('mirror_manifests').select('digest').execute()).length,
    localRepositories: (await db.selectFrom('repositories').select('name').execute()).map((row) => row.name),
  };
}

describe('offline sites: bundles carry where images came from, and import fills the mirror cache', () => {
  let directory: string;
  let upstream: TestUpstream;
  let connected: TestRegistry;
  let image: TestManifest;
  let signature: TestManifest;
  let amd64: TestManifest;
  let arm64: TestManifest;
  let multi: TestManifest;
  let bundle: string;
  let exported: ExportSummary;

  const exportFrom = (registry: TestRegistry, file: string, request: Parameters<typeof exportImages>[2]) =>
    exportImages(storesOf(registry), registry.registry.services.mirror?.addressing ?? null, request, createWriteStream(file));
  const sync = async (registry: TestRegistry, lines: string[]) => {
    const list = path.join(directory, `sync-${Date.now()}.yaml`);
    await writeFile(list, ['images:', ...lines.map((line) => `  - ${line}`), ''].join('\n'));
    const mirror = registry.registry.services.mirror!;
    const summary = await syncImages(mirror, readSyncList(list, mirror), { image: () => ({ progress: () => {}, done: () => {} }) });
    assert.deepEqual(summary.failed, []);
    return summary;
  };

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-mirror-transfer-'));
    upstream = await startTestUpstream();
    const pusher = await upstream.pusher(['repository:team-a/app:pull,push', 'repository:team-a/multi:pull,push']);
    image = imageManifest();
    await pushManifest(pusher, 'team-a/app', 'v1', image);
    signature = referrerOf(image, 'application/vnd.example.signature');
    await pushManifest(pusher, 'team-a/app', signature.digest, signature);
    amd64 = imageManifest();
    arm64 = imageManifest();
    await pushManifest(pusher, 'team-a/multi', amd64.digest, amd64);
    await pushManifest(pusher, 'team-a/multi', arm64.digest, arm64);
    multi = indexOf([{ manifest: amd64, architecture: 'amd64' }, { manifest: arm64, architecture: 'arm64' }]);
    await pushManifest(pusher, 'team-a/multi', 'v2', multi);
    connected = await createTestRegistry({ mirror: mirrorConfigFor(upstream, { repositories: ['team-a/**'] }) });
    const synced = await sync(connected, ['central/team-a/app:v1', 'central/team-a/multi:v2']);
    assert.deepEqual({ images: synced.images, manifests: synced.manifests, blobs: synced.blobs }, { images: 2, manifests: 5, blobs: 8 });
    bundle = path.join(directory, 'bundle.tar');
    exported = await exportFrom(connected, bundle, { references: ['central/team-a/app:v1', 'central/team-a/multi:v2'] });
    assert.deepEqual(
      { images: exported.images, manifests: exported.manifests, blobs: exported.blobs, bytes: exported.bytes },
      { images: synced.images, manifests: synced.manifests, blobs: synced.blobs, bytes: synced.bytes },
      'export counts the bundle as sync counted the same images',
    );
  });
  after(async () => {
    await connected?.close();
    await upstream?.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('the bundle names, for every mirrored entry, the upstream and its repository, and when the tag was seen there', async () => {
    const { index, bundle: description, names } = await readArchive(bundle);
    const tagged = index.manifests.find((entry) => entry.digest === image.digest)!;
    assert.equal(tagged.annotations?.['org.opencontainers.image.ref.name'], 'central/team-a/app:v1');
    assert.equal(tagged.annotations?.['dev.oci-registry.repository'], 'central/team-a/app');
    assert.equal(tagged.annotations?.['dev.oci-registry.upstream'], 'central');
    assert.equal(tagged.annotations?.['dev.oci-registry.upstream.repository'], 'team-a/app');
    const seen = (await connected.metadata.db.selectFrom('mirror_tags').select('checked_at').where('tag', '=', 'v1').executeTakeFirstOrThrow()).checked_at;
    assert.equal(tagged.annotations?.['dev.oci-registry.tag.seen'], new Date(Number(seen)).toISOString());
    const referrer = index.manifests.find((entry) => entry.digest === signature.digest)!;
    assert.equal(referrer.annotations?.['dev.oci-registry.upstream'], 'central', 'referrers carry their provenance too');
    assert.equal(description.since, null);
    assert.deepEqual(description.leftOut, []);
    assert.ok(names.includes(`blobs/sha256/${image.blobs[1]!.digest.slice(7)}`));
  });

  it('imports mirrored images into the mirror cache of the upstream of that name, served offline by prefix, ?ns= and plain name', async () => {
    const offline = await createTestRegistry({ mirror: offlineMirror() });
    try {
      const summary = await importArchive(bundle, localTarget(offline));
      assert.deepEqual(
        { images: summary.images, manifests: summary.manifests, blobs: summary.blobs, bytes: summary.bytes, stored: summary.blobsStored },
        { images: exported.images, manifests: exported.manifests, blobs: exported.blobs, bytes: exported.bytes, stored: exported.blobs },
        'import counts the bundle as export did',
      );
      assert.deepEqual(summary.tags, { created: 2, moved: 0, unchanged: 0, 'kept-newer': 0 });
      const rows = await mirrorRows(offline);
      assert.deepEqual(rows.localRepositories, [], 'no local repository named after the prefix');
      assert.deepEqual(rows.tags.map((row) => [row.upstream, row.repository, row.tag, row.digest]), [
        ['central', 'team-a/app', 'v1', image.digest],
        ['central', 'team-a/multi', 'v2', multi.digest],
      ]);
      const seen = (await readArchive(bundle)).index.manifests.find((entry) => entry.digest === image.digest)!.annotations!['dev.oci-registry.tag.seen']!;
      assert.equal(Number(rows.tags[0]!.checked_at), Date.parse(seen), 'the tag counts as checked when the connected site saw it');
      assert.deepEqual(rows.history.map((row) => [row.tag, row.from_digest, row.to_digest, row.action]), [
        ['v1', null, image.digest, 'imported'],
        ['v2', null, multi.digest, 'imported'],
      ]);
      const history = await offline.request.get('/api/v1/mirror/history?repository=team-a/app').expect(200);
      assert.equal((history.body as { events: Array<{ action: string }> }).events[0]?.action, 'imported');

      for (const path of ['/v2/central/team-a/app/manifests/v1', '/v2/team-a/app/manifests/v1?ns=central', '/v2/team-a/app/manifests/v1']) {
        const response = await offline.request.get(path).set('Accept', allManifestTypes).buffer(true).parse(binary).expect(200);
        assert.deepEqual(response.body, image.bytes, path);
      }
      for (const blob of image.blobs) {
        const response = await offline.request.get(`/v2/team-a/app/blobs/${blob.digest}?ns=central`).buffer(true).parse(binary).expect(200);
        assert.deepEqual(response.body, blob.bytes);
      }
      const child = await offline.request.get(`/v2/central/team-a/multi/manifests/${arm64.digest}`).set('Accept', allManifestTypes).expect(200);
      assert.equal(child.headers['docker-content-digest'], arm64.digest);
      const referrers = await offline.request.get(`/v2/central/team-a/app/referrers/${image.digest}`).expect(200);
      assert.deepEqual((referrers.body as { manifests: Array<{ digest: string; artifactType?: string }> }).manifests.map((entry) => [entry.digest, entry.artifactType]), [
        [signature.digest, 'application/vnd.example.signature'],
      ]);
      const status = (await offline.request.get('/api/v1/mirror/status').expect(200)).body as { upstreams: Array<{ state: string }> };
      assert.notEqual(status.upstreams[0]?.state, 'reachable', 'nothing came from the upstream');

      const again = await importArchive(bundle, localTarget(offline));
      assert.deepEqual({ stored: again.blobsStored, present: again.blobsPresent, tags: again.tags.unchanged }, { stored: 0, present: exported.blobs, tags: 2 });
      assert.equal((await mirrorRows(offline)).history.length, 2, 'an unchanged tag is no event');
    } finally {
      await offline.close();
    }
  });

  it('a site that does not name the upstream refuses, naming it and --as-local, and stores nothing; --as-local imports under the exported names', async () => {
    const plain = await createTestRegistry();
    try {
      await assert.rejects(importArchive(bundle, localTarget(plain)), (error: unknown) => {
        assert.ok(error instanceof ImportError);
        assert.match(error.message, /central\/team-a\/app:v1.*upstream central \(team-a\/app\), which this site's configuration does not name \(it configures no mirror\)/);
        assert.match(error.message, /--as-local/);
        assert.match(error.message, /any URL, even one this site cannot reach/);
        return true;
      });
      assert.deepEqual(await plain.storedFiles(), []);
      assert.equal((await plain.rowCounts()).blobs, 0);
      const local = await importArchive(bundle, localTarget(plain), { asLocal: true });
      assert.equal(local.manifests, exported.manifests);
      const response = await plain.request.get('/v2/central/team-a/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
      assert.equal(response.headers['docker-content-digest'], image.digest);
      assert.deepEqual((await mirrorRows(plain)).localRepositories.sort(), ['central/team-a/app', 'central/team-a/multi']);
    } finally {
      await plain.close();
    }
    const narrow = await createTestRegistry({ mirror: offlineMirror({ repositories: ['team-a/other/**'] }) });
    try {
      await assert.rejects(importArchive(bundle, localTarget(narrow)), /upstream central of this site does not serve team-a\/app \(mirror\.upstreams\.central\.repositories\)/);
      assert.equal((await narrow.rowCounts()).blobs, 0);
    } finally {
      await narrow.close();
    }
  });

  it('an incremental bundle leaves out what the previous one carried; it imports where that one was imported, and is refused elsewhere', async () => {
    // The tag moves upstream, and the connected site sees it.
    const pusher = await upstream.pusher(['repository:team-a/app:pull,push']);
    // The same config, a new layer.
    const moved = imageManifest({ config: image.blobs[0]!, layerSize: 5000 });
    const newLayer = moved.blobs[1]!;
    await pushManifest(pusher, 'team-a/app', 'v1', moved);
    await sync(connected, ['central/team-a/app:v1', 'central/team-a/multi:v2']);
    const second = path.join(directory, 'second.tar');
    const previous = await readArchive(bundle);
    const digestOfEntry = (name: string) => (/^blobs\/sha256\/([a-f0-9]{64})$/.exec(name) ? `sha256:${name.slice('blobs/sha256/'.length)}` : null);
    const carried = new Set(previous.names.map(digestOfEntry).filter((digest): digest is string => digest !== null));
    const manifestDigests = new Set([image, signature, amd64, arm64, multi].map((manifest) => manifest.digest));
    const summary = await exportFrom(connected, second, { references: ['central/team-a/app:v1', 'central/team-a/multi:v2'], since: { description: previous.bundle, carried } });
    assert.equal(summary.blobs, 1 + 1 + 4, 'the new image: its config and new layer; the index: four blobs');
    assert.equal(summary.blobsLeftOut, summary.blobs - 1, 'only the new layer is carried');
    const written = await readArchive(second);
    const rewritten = written.names.map(digestOfEntry).filter((digest) => digest !== null && carried.has(digest) && !manifestDigests.has(digest));
    assert.deepEqual(rewritten, [], 'no carried blob is written again (manifests always are)');
    assert.ok(written.names.includes(`blobs/sha256/${newLayer.digest.slice(7)}`));
    assert.equal(written.bundle.since?.id, previous.bundle.id);

    const empty = await createTestRegistry({ mirror: offlineMirror() });
    try {
      await assert.rejects(importArchive(second, localTarget(empty)), new RegExp(`incremental bundle made after bundle ${previous.bundle.id}.*import that bundle first`));
      assert.equal((await empty.rowCounts()).blobs, 0, 'nothing stored');
    } finally {
      await empty.close();
    }
    const site = await createTestRegistry({ mirror: offlineMirror() });
    try {
      await importArchive(bundle, localTarget(site));
      const imported = await importArchive(second, localTarget(site));
      assert.deepEqual({ stored: imported.blobsStored, moved: imported.tags.moved, unchanged: imported.tags.unchanged }, { stored: 1, moved: 1, unchanged: 1 });
      const history = (await mirrorRows(site)).history.filter((row) => row.tag === 'v1');
      assert.deepEqual(history.map((row) => [row.from_digest, row.to_digest, row.action]), [
        [null, image.digest, 'imported'],
        [image.digest, moved.digest, 'imported'],
      ]);
      const response = await site.request.get('/v2/central/team-a/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
      assert.equal(response.headers['docker-content-digest'], moved.digest);
      const layer = await site.request.get(`/v2/central/team-a/app/blobs/${newLayer.digest}`).buffer(true).parse(binary).expect(200);
      assert.deepEqual(layer.body, newLayer.bytes);
      // The older bundle again: the cache saw v1 upstream later than that bundle did, so v1 stays.
      const older = await importArchive(bundle, localTarget(site));
      assert.equal(older.tags['kept-newer'], 1);
      const still = await site.request.get('/v2/central/team-a/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
      assert.equal(still.headers['docker-content-digest'], moved.digest);
    } finally {
      await site.close();
    }
    // Put the upstream back as the other tests expect it.
    await pushManifest(pusher, 'team-a/app', 'v1', image);
    await sync(connected, ['central/team-a/app:v1']);
  });

  it('--all-mirrored exports the whole cache of an upstream, and skips images whose layers were never fetched', async () => {
    const pusher = await upstream.pusher(['repository:team-a/partial:pull,push']);
    const partial = imageManifest();
    await pushManifest(pusher, 'team-a/partial', 'v9', partial);
    await connected.request.get('/v2/central/team-a/partial/manifests/v9').set('Accept', allManifestTypes).expect(200);
    const whole = path.join(directory, 'whole.tar');
    const summary = await exportFrom(connected, whole, { references: [], allMirrored: upstreamsOf(connected) });
    assert.deepEqual(summary.skipped.map((entry) => entry.image), ['central/team-a/partial:v9']);
    assert.match(summary.skipped[0]!.reason, /does not hold blob/);
    const { index } = await readArchive(whole);
    const names = index.manifests.map((entry) => entry.annotations?.['org.opencontainers.image.ref.name']).filter(Boolean).sort();
    assert.deepEqual(names, ['central/team-a/app:v1', 'central/team-a/multi:v2']);
    const cached = await connected.metadata.db.selectFrom('mirror_manifests').select('digest').where('upstream', '=', 'central').execute();
    assert.equal(summary.manifests, cached.length - 1, 'every cached manifest but the incomplete one, tagged or not (the image v1 pointed at for a while)');
  });

  it('imports over HTTP through the cache-import API, with token auth; the API refuses bad input and stores nothing', async () => {
    const files = await writeTestPolicy();
    const offline = await createTestRegistry({ mirror: offlineMirror(), auth: { mode: 'token', policy: files.policy } });
    try {
      const { port } = await offline.listen();
      const url = `http://127.0.0.1:${port}`;
      const empty = await offline.rowCounts();
      // bob may only pull team-a/**.
      await assert.rejects(importArchive(bundle, new HttpImportTarget(url, { username: 'bob', password: passwords.bob })), /403|denied/i);
      // alice may push the local team-a/**: that is no grant on central's cache of team-a/app, whose name it only resembles.
      await assert.rejects(importArchive(bundle, new HttpImportTarget(url, { username: 'alice', password: passwords.alice })), /403|denied/i);
      const aliceToken = await fetchToken(offline.request, ['alice', passwords.alice], ['repository:team-a/app:pull,push']);
      const poison = testBlob(3000);
      const refused = await offline.request
        .put(`/api/v1/mirror/cache/team-a/app/blobs/${poison.digest}?ns=central`)
        .set('Authorization', `Bearer ${aliceToken}`)
        .type('application/octet-stream')
        .send(poison.bytes);
      assert.equal(refused.status, 401, 'a token for the local name does not cover the mirror cache: the challenge names what does');
      assert.match(String(refused.headers['www-authenticate']), /scope="repository:central\/team-a\/app:pull,push registry:mirror-import:\*"/);
      const manifestRefused = await offline.request
        .put('/api/v1/mirror/cache/team-a/app/manifests/v1?ns=central')
        .set('Authorization', `Bearer ${aliceToken}`)
        .set('Content-Type', ociManifestType)
        .send(image.bytes.toString());
      assert.equal(manifestRefused.status, 401);
      assert.deepEqual(await offline.rowCounts(), empty, 'nothing of alice\'s reached the cache');
      assert.deepEqual((await offline.storedFiles()).filter((name) => name.includes(poison.digest.slice(7))), []);

      // loader holds the mirror-import grant: the import goes through.
      const summary = await importArchive(bundle, new HttpImportTarget(url, { username: 'loader', password: passwords.loader }));
      assert.equal(summary.blobsStored, exported.blobs);
      assert.deepEqual(summary.tags, { created: 2, moved: 0, unchanged: 0, 'kept-newer': 0 });
      assert.deepEqual((await mirrorRows(offline)).localRepositories, []);
      // dave may push central/team-a/**, the mirrored names in their prefixed form: that grant covers the cache too.
      const again = await importArchive(bundle, new HttpImportTarget(url, { username: 'dave', password: passwords.dave }));
      assert.deepEqual(again.tags, { created: 0, moved: 0, unchanged: 2, 'kept-newer': 0 });
      const token = await fetchToken(offline.request, ['loader', passwords.loader], ['registry:mirror-import:*']);
      const bearer = `Bearer ${token}`;
      // alice's rules name team-a/**: she pulls the mirrored image as containerd addresses it.
      const response = await offline.request.get('/v2/team-a/app/manifests/v1?ns=central').set('Authorization', `Bearer ${aliceToken}`).set('Accept', allManifestTypes).expect(200);
      assert.equal(response.headers['docker-content-digest'], image.digest);

      const before = await offline.rowCounts();
      const unknown = await offline.request.get(`/api/v1/mirror/cache/team-a/app/blobs/${image.blobs[0]!.digest}?ns=elsewhere`).set('Authorization', bearer).expect(404);
      assert.equal(envelopeCode(unknown), 'NAME_UNKNOWN');
      assert.match(String((unknown.body as { errors: Array<{ message: string }> }).errors[0]?.message), /no upstream named elsewhere/);
      const blob = testBlob(4000);
      const wrong = await offline.request.put(`/api/v1/mirror/cache/team-a/new/blobs/${blob.digest}?ns=central`).set('Authorization', bearer).type('application/octet-stream').send(testBlob(4000).bytes).expect(400);
      assert.equal(envelopeCode(wrong), 'DIGEST_INVALID');
      const badDigest = await offline.request.put('/api/v1/mirror/cache/team-a/new/blobs/sha256:xyz?ns=central').set('Authorization', bearer).type('application/octet-stream').send(blob.bytes).expect(400);
      assert.equal(envelopeCode(badDigest), 'DIGEST_INVALID');
      const orphan = imageManifest();
      const noBlobs = await offline.request.put('/api/v1/mirror/cache/team-a/new/manifests/v1?ns=central').set('Authorization', bearer).set('Content-Type', ociManifestType).send(orphan.bytes.toString()).expect(400);
      assert.equal(envelopeCode(noBlobs), 'MANIFEST_BLOB_UNKNOWN');
      const sizeBody = JSON.parse(image.bytes.toString()) as { layers: Array<{ size: number }> };
      sizeBody.layers[0]!.size = 10 ** 15;
      const wrongSize = await offline.request.put('/api/v1/mirror/cache/team-a/app/manifests/lying?ns=central').set('Authorization', bearer).set('Content-Type', ociManifestType).send(manifestOf(sizeBody, ociManifestType).bytes.toString()).expect(400);
      assert.equal(envelopeCode(wrongSize), 'MANIFEST_INVALID');
      const badSeen = await offline.request.put('/api/v1/mirror/cache/team-a/new/manifests/v1?ns=central&seen=yesterday').set('Authorization', bearer).set('Content-Type', ociManifestType).send(image.bytes.toString()).expect(400);
      assert.match(String((badSeen.body as { errors: Array<{ message: string }> }).errors[0]?.message), /ISO 8601/);
      const notServed = await offline.request.put('/api/v1/mirror/cache/public/x/manifests/v1?ns=central').set('Authorization', bearer).set('Content-Type', ociManifestType).send(image.bytes.toString()).expect(404);
      assert.match(String((notServed.body as { errors: Array<{ message: string }> }).errors[0]?.message), /does not serve public\/x/);
      assert.deepEqual(await offline.rowCounts(), before, 'nothing stored by any bad request');
      const files2 = (await offline.storedFiles()).filter((file) => file.includes(blob.digest.slice(7)));
      assert.deepEqual(files2, []);
      // A push into the mirrored name through the distribution API is still refused.
      const pushToken = await fetchToken(offline.request, ['alice', passwords.alice], ['repository:team-a/new:pull,push']);
      const push = await offline.request.post('/v2/team-a/new/blobs/uploads/?ns=central').set('Authorization', `Bearer ${pushToken}`).expect(405);
      assert.equal(envelopeCode(push), 'UNSUPPORTED');
    } finally {
      await offline.close();
      await rm(files.directory, { recursive: true, force: true });
    }
    const noMirror = await createTestRegistry();
    try {
      const { port } = await noMirror.listen();
      await assert.rejects(importArchive(bundle, new HttpImportTarget(`http://127.0.0.1:${port}`, null)), /has no pull-through mirror configured/);
      assert.equal((await noMirror.rowCounts()).blobs, 0);
    } finally {
      await noMirror.close();
    }
  });

  it('a tag seen "in the future" counts as seen now, through the cache API and in a bundle: later imports still move it', async () => {
    const siteClock = new ManualClock();
    const site = await createTestRegistry({ clock: siteClock, mirror: offlineMirror() });
    try {
      const other = imageManifest();
      for (const blob of [...image.blobs, ...other.blobs]) {
        await site.request.put(`/api/v1/mirror/cache/team-a/app/blobs/${blob.digest}?ns=central`).type('application/octet-stream').send(blob.bytes).expect(201);
      }
      const put = (manifest: TestManifest, seen: string) =>
        site.request.put(`/api/v1/mirror/cache/team-a/app/manifests/v1?ns=central&seen=${encodeURIComponent(seen)}`).set('Content-Type', manifest.mediaType).send(manifest.bytes.toString()).expect(201);
      assert.equal((await put(image, '9999-12-31T00:00:00Z')).body.tag, 'created');
      const row = await site.metadata.db.selectFrom('mirror_tags').select('checked_at').where('tag', '=', 'v1').executeTakeFirstOrThrow();
      assert.equal(Number(row.checked_at), siteClock.now(), 'checked now, not in 9999');
      siteClock.advance(60_000);
      assert.equal((await put(other, new Date(siteClock.now()).toISOString())).body.tag, 'moved', 'a later import is not kept out by a time that has not come');

      const future = path.join(directory, 'future.tar');
      await rewriteArchive(bundle, future, {
        replace: (name, bytes) => {
          if (name !== 'index.json') return undefined;
          const index = JSON.parse(bytes.toString()) as { manifests: Array<{ annotations?: Record<string, string> }> };
          for (const entry of index.manifests) if (entry.annotations?.[tagSeenAnnotation]) entry.annotations[tagSeenAnnotation] = '9999-12-31T00:00:00.000Z';
          return Buffer.from(JSON.stringify(index));
        },
      });
      const freshClock = new ManualClock();
      const fresh = await createTestRegistry({ clock: freshClock, mirror: offlineMirror() });
      try {
        await importArchive(future, localTarget(fresh));
        const tags = await fresh.metadata.db.selectFrom('mirror_tags').select(['tag', 'checked_at']).execute();
        assert.equal(tags.length, 2);
        for (const tag of tags) assert.equal(Number(tag.checked_at), freshClock.now(), `${tag.tag} counts as seen at the import`);
      } finally {
        await fresh.close();
      }
    } finally {
      await site.close();
    }
  });

  it('a damaged bundle is refused before anything is written: no bytes, no rows, no repository, no event', async () => {
    const layer = amd64.blobs[1]!;
    const damaged = {
      manifest: path.join(directory, 'damaged-manifest.tar'),
      blob: path.join(directory, 'damaged-blob.tar'),
      size: path.join(directory, 'lying-size.tar'),
    };
    // A manifest, its digest right, giving its layer a size the archive's layer does not have.
    const lyingBody = JSON.parse(image.bytes.toString()) as { layers: Array<{ size: number }> };
    lyingBody.layers[0]!.size = 10 ** 15;
    const lying = manifestOf(lyingBody, image.mediaType);
    await rewriteArchive(bundle, damaged.size, {
      drop: (name) => name === `blobs/sha256/${image.digest.slice(7)}`,
      replace: (name, bytes) => (name === 'index.json' ? Buffer.from(bytes.toString().split(image.digest).join(lying.digest)) : undefined),
      add: [{ name: `blobs/sha256/${lying.digest.slice(7)}`, bytes: lying.bytes }],
    });
    // The manifest's bytes changed (still valid JSON); a layer of the second image changed, its size kept.
    await rewriteArchive(bundle, damaged.manifest, { replace: (name, bytes) => (name === `blobs/sha256/${image.digest.slice(7)}` ? Buffer.concat([bytes, Buffer.from(' ')]) : undefined) });
    await rewriteArchive(bundle, damaged.blob, { replace: (name) => (name === `blobs/sha256/${layer.digest.slice(7)}` ? Buffer.alloc(layer.bytes.length, 0x41) : undefined) });
    const cases: Array<[string, RegExp]> = [
      [damaged.manifest, new RegExp(`the manifest stored as ${image.digest} hashes to sha256:`)],
      [damaged.blob, new RegExp(`blob ${layer.digest} holds other bytes`)],
      [damaged.size, new RegExp(`manifest ${lying.digest} gives blob ${image.blobs[1]!.digest} 1000000000000000 bytes; the archive holds 3000`)],
    ];
    for (const asLocal of [false, true]) {
      for (const [file, message] of cases) {
        const site = await createTestRegistry({ mirror: offlineMirror() });
        try {
          await assert.rejects(importArchive(file, localTarget(site), { asLocal }), (error: unknown) => error instanceof ImportError && message.test(error.message));
          const counts = await site.rowCounts();
          assert.deepEqual(Object.values(counts).filter((count) => count > 0), [], `${path.basename(file)}${asLocal ? ' --as-local' : ''}: ${JSON.stringify(counts)}`);
          assert.equal((await site.metadata.db.selectFrom('audit_events').select('id').execute()).length, 0);
          assert.deepEqual(await site.storedFiles(), []);
        } finally {
          await site.close();
        }
      }
    }
  });

  it('links, absolute paths and paths out of the archive are never followed or written', async () => {
    const layer = amd64.blobs[1]!;
    const layerEntry = `blobs/sha256/${layer.digest.slice(7)}`;
    const outside = path.join(tmpdir(), `registry-traversal-${process.pid}-${Date.now()}`);
    const crafted = {
      symlink: path.join(directory, 'symlink.tar'),
      hardlink: path.join(directory, 'hardlink.tar'),
      paths: path.join(directory, 'paths.tar'),
    };
    await rewriteArchive(bundle, crafted.symlink, { drop: (name) => name === layerEntry, append: [rawTarHeader(layerEntry, '2', '/etc/passwd')] });
    await rewriteArchive(bundle, crafted.hardlink, { drop: (name) => name === layerEntry, append: [rawTarHeader(layerEntry, '1', 'oci-layout')] });
    const payload = Buffer.from('not for the disk');
    const padded = Buffer.concat([payload, Buffer.alloc(512 - payload.length)]);
    await rewriteArchive(bundle, crafted.paths, {
      append: [rawTarHeader(`../../../../../..${outside}`, '0', '', payload.length), padded, rawTarHeader(`${outside}-absolute`, '0', '', payload.length), padded],
    });
    for (const file of [crafted.symlink, crafted.hardlink]) {
      const site = await createTestRegistry({ mirror: offlineMirror() });
      try {
        await assert.rejects(importArchive(file, localTarget(site)), new RegExp(`lacks blob ${layer.digest}`), 'a link is no blob');
        assert.equal((await site.rowCounts()).blobs, 0);
        assert.deepEqual(await site.storedFiles(), []);
      } finally {
        await site.close();
      }
    }
    const site = await createTestRegistry({ mirror: offlineMirror() });
    try {
      const summary = await importArchive(crafted.paths, localTarget(site));
      assert.equal(summary.images, 2, 'the entries the layout names import; the others are ignored');
      for (const written of [outside, `${outside}-absolute`]) await assert.rejects(open(written, 'r'), /ENOENT/, written);
    } finally {
      await site.close();
    }
  });

  it('a malformed archive is one line naming what is wrong, never a stack', async () => {
    const whole = await readFile(bundle);
    const files = {
      notJson: path.join(directory, 'not-json.tar'),
      notList: path.join(directory, 'not-list.tar'),
      checksum: path.join(directory, 'checksum.tar'),
      cut: path.join(directory, 'cut.tar'),
    };
    await rewriteArchive(bundle, files.notJson, { replace: (name) => (name === 'index.json' ? Buffer.from('{"manifests": [') : undefined) });
    await rewriteArchive(bundle, files.notList, { replace: (name) => (name === 'index.json' ? Buffer.from('{"manifests": 5}') : undefined) });
    const flipped = Buffer.from(whole);
    flipped[0] = flipped[0]! ^ 0x01;
    await writeFile(files.checksum, flipped);
    await writeFile(files.cut, whole.subarray(0, Math.floor(whole.length / 2)));
    const expected: Array<[string, RegExp]> = [
      [files.notJson, /index\.json is not valid JSON/],
      [files.notList, /index\.json's manifests is not a list/],
      [files.checksum, /bad header checksum at byte 0/],
      [files.cut, /cut short|lacks blob/],
    ];
    const site = await createTestRegistry({ mirror: offlineMirror() });
    try {
      for (const [file, message] of expected) {
        await assert.rejects(importArchive(file, localTarget(site)), (error: unknown) => error instanceof ImportError && message.test(error.message) && !error.message.includes('\n'), file);
      }
      assert.equal((await site.rowCounts()).blobs, 0);
    } finally {
      await site.close();
    }
  });

  it('mirror status says unknown for an upstream never asked, and the last error with its time once one failed', async () => {
    const offline = await createTestRegistry({ mirror: offlineMirror() });
    try {
      const first = (await offline.request.get('/api/v1/mirror/status').expect(200)).body as { upstreams: Array<{ state: string; lastFailure: unknown; lastSuccess: unknown }> };
      assert.deepEqual([first.upstreams[0]?.state, first.upstreams[0]?.lastFailure, first.upstreams[0]?.lastSuccess], ['unknown', null, null]);
      const started = Date.now();
      await offline.request.get('/v2/central/team-a/app/manifests/v1').set('Accept', allManifestTypes).expect(503);
      const then = (await offline.request.get('/api/v1/mirror/status').expect(200)).body as { upstreams: Array<{ state: string; lastFailure: { at: string; reason: string } | null }> };
      assert.equal(then.upstreams[0]?.state, 'unreachable');
      assert.match(then.upstreams[0]?.lastFailure?.reason ?? '', /ECONNREFUSED/);
      assert.ok(Date.parse(then.upstreams[0]!.lastFailure!.at) >= started - 1000);
    } finally {
      await offline.close();
    }
  });
});
