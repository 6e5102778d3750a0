import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import Database from 'better-sqlite3';
import { OciLayout } from '../helpers/oci-layout.js';
import { createTestDatabase, postgresSkipReason } from '../helpers/postgres.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const ociManifest = 'application/vnd.oci.image.manifest.v1+json';
const skip = missingClients('skopeo');
const postgresSkip = skip ?? (await postgresSkipReason());
if (postgresSkip && !skip) console.log(`# ${postgresSkip}`);

interface Blob {
  bytes: Buffer;
  digest: string;
}

const blobOf = (bytes: Buffer): Blob => ({ bytes, digest: sha256(bytes) });

/** What the clients were told: the manifest each tag should now give, as its last successful push set it. */
interface Pushed {
  manifest: Buffer;
  digest: string;
  blobs: Blob[];
}

interface Outcomes {
  pushes: number;
  refused: number;
  /** Answers that are neither success nor the refusal a grace of 0 allows. */
  unexpected: string[];
  collections: number;
  /** Runs that found another one holding the lease (exit 2). */
  busy: number;
}

/**
 * A client as docker is on the wire: HEAD each blob, upload only those missing (POST, one PATCH,
 * PUT ?digest=), then PUT the manifest by tag. Layers are shared between clients and images.
 */
class PushingClient {
  constructor(
    private readonly bases: string[],
    private readonly repository: string,
    private readonly sharedLayers: Blob[],
    private readonly tags: Map<string, Pushed>,
    private readonly outcomes: Outcomes,
  ) {}

  private base(): string {
    return this.bases[Math.floor(Math.random() * this.bases.length)]!;
  }

  async loop(until: () => boolean): Promise<void> {
    for (let round = 0; !until(); round++) {
      const tag = `t${round % 3}`;
      const layers = [this.sharedLayers[round % this.sharedLayers.length]!, this.sharedLayers[(round + 1) % this.sharedLayers.length]!, blobOf(randomBytes(2048 + (round % 7)))];
      const config = blobOf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', round, repository: this.repository })));
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: ociManifest,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
          layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.bytes.length })),
        }),
      );
      try {
        for (const blob of [config, ...layers]) await this.pushBlob(blob);
        const put = await fetch(`${this.base()}/v2/${this.repository}/manifests/${tag}`, { method: 'PUT', headers: { 'Content-Type': ociManifest }, body: manifest });
        const text = await put.text();
        this.outcomes.pushes++;
        if (put.status === 201) {
          this.tags.set(`${this.repository}:${tag}`, { manifest, digest: sha256(manifest), blobs: [config, ...layers] });
        } else if (put.status === 400 && text.includes('MANIFEST_BLOB_UNKNOWN')) {
          this.outcomes.refused++;
        } else {
          this.outcomes.unexpected.push(`manifest PUT ${put.status} ${text.slice(0, 300)}`);
        }
        // Now and then the image is deleted by digest (its tag goes with it).
        if (put.status === 201 && round % 5 === 4) {
          const removed = await fetch(`${this.base()}/v2/${this.repository}/manifests/${sha256(manifest)}`, { method: 'DELETE' });
          await removed.body?.cancel();
          if (removed.status === 202) this.tags.delete(`${this.repository}:${tag}`);
          else this.outcomes.unexpected.push(`manifest DELETE ${removed.status}`);
        }
      } catch (error) {
        this.outcomes.unexpected.push(`client error: ${(error as Error).message}`);
      }
    }
  }

  private async pushBlob(blob: Blob): Promise<void> {
    const base = this.base();
    const head = await fetch(`${base}/v2/${this.repository}/blobs/${blob.digest}`, { method: 'HEAD' });
    if (head.status === 200) return; // as docker: the registry has it, skip the upload
    const started = await fetch(`${base}/v2/${this.repository}/blobs/uploads/`, { method: 'POST' });
    await started.body?.cancel();
    if (started.status !== 202) throw new Error(`upload POST ${started.status}`);
    const location = new URL(started.headers.get('location')!, base);
    const patched = await fetch(location, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' }, body: blob.bytes });
    await patched.body?.cancel();
    if (patched.status !== 202) throw new Error(`upload PATCH ${patched.status}`);
    const next = new URL(patched.headers.get('location')!, base);
    next.searchParams.set('digest', blob.digest);
    const done = await fetch(next, { method: 'PUT' });
    const text = await done.text();
    if (done.status !== 201) this.outcomes.unexpected.push(`upload PUT ${done.status} ${text.slice(0, 300)}`);
  }
}

interface StressSetup {
  servers: ServerProcess[];
  /** Environment for the `registry gc` command line on the same stores. */
  gcEnv: Record<string, string>;
  /** Every blob key in storage (relative, as `blobs/sha256/…/data`). */
  storedBlobKeys(): Promise<string[]>;
  /** Digests every manifest row names (layers, configs, its own bytes). */
  referencedDigests(): Promise<Set<string>>;
}

async function stress(setup: StressSetup, options: { graceSeconds: number; durationMs: number; layout: OciLayout }): Promise<Outcomes> {
  const bases = setup.servers.map((server) => `http://127.0.0.1:${server.port}`);
  const shared = Array.from({ length: 5 }, () => blobOf(randomBytes(4096)));
  const tags = new Map<string, Pushed>();
  const outcomes: Outcomes = { pushes: 0, refused: 0, unexpected: [], collections: 0, busy: 0 };
  const deadline = Date.now() + options.durationMs;
  const until = () => Date.now() > deadline;
  const clients = ['stress/a', 'stress/b', 'stress/c'].map((repository) => new PushingClient(bases, repository, shared, tags, outcomes).loop(until));
  // skopeo pushes real images too, mounting layers it pushed before.
  const skopeoPushes = (async () => {
    for (let round = 0; !until(); round++) {
      const host = bases[round % bases.length]!.slice('http://'.length);
      const target = `docker://${host}/stress/skopeo-${round % 2}:v${round % 3}`;
      try {
        await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${options.layout.directory}:image`, target], { timeoutMs: 120_000 });
        outcomes.pushes++;
      } catch (error) {
        const message = (error as Error).message;
        if (options.graceSeconds === 0 && /manifest blob unknown|MANIFEST_BLOB_UNKNOWN|blob unknown/i.test(message)) outcomes.refused++;
        else outcomes.unexpected.push(`skopeo: ${message.slice(-500)}`);
      }
    }
  })();
  // Collections back to back from the command line beside the servers; with several replicas, two
  // such loops at once, as two replicas' schedules would: one runs, the other says so and exits 2.
  const collectionLoops = Array.from({ length: setup.servers.length > 1 ? 2 : 1 }, async () => {
    while (!until()) {
      const result = await runRegistryCommand(['gc', '--grace', `${options.graceSeconds}s`, '--untagged', '--json'], setup.gcEnv);
      if (result.code === 0) outcomes.collections++;
      else if (result.code === 2 && /another garbage collection is running/.test(result.stderr)) outcomes.busy++;
      else outcomes.unexpected.push(`registry gc exited ${result.code}: ${result.stderr.slice(-500)}`);
    }
  });
  await Promise.all([...clients, skopeoPushes, ...collectionLoops]);
  const serverErrors = setup.servers.flatMap((server) => server.logs.filter((entry) => entry.level === 'error' || entry.level === 'fatal' || (entry.msg === 'request' && Number(entry.status) >= 500)));
  if (serverErrors.length > 0) outcomes.unexpected.push(`server errors: ${JSON.stringify(serverErrors.slice(0, 5))}`);

  // Every image whose push succeeded and that is still tagged pulls back byte for byte.
  for (const [name, pushed] of tags) {
    const [repository, tag] = name.split(':') as [string, string];
    for (const base of bases) {
      const response = await fetch(`${base}/v2/${repository}/manifests/${tag}`, { headers: { Accept: ociManifest } });
      assert.equal(response.status, 200, `${name} through ${base}`);
      assert.equal(sha256(Buffer.from(await response.arrayBuffer())), pushed.digest, `${name} is what its last successful push put there`);
      for (const blob of pushed.blobs) {
        const bytes = await fetch(`${base}/v2/${repository}/blobs/${blob.digest}`);
        assert.equal(bytes.status, 200, `${name}: blob ${blob.digest}`);
        assert.equal(sha256(Buffer.from(await bytes.arrayBuffer())), blob.digest);
      }
    }
  }
  return outcomes;
}

async function assertNothingUnreferenced(setup: StressSetup): Promise<void> {
  const final = await runRegistryCommand(['gc', '--grace', '0s', '--untagged', '--json'], setup.gcEnv);
  assert.equal(final.code, 0, final.stderr);
  const referenced = await setup.referencedDigests();
  const stored = (await setup.storedBlobKeys()).map((key) => /^blobs\/sha256\/[a-f0-9]{2}\/([a-f0-9]{64})\/data$/.exec(key)?.[1]).filter((hex): hex is string => hex !== undefined);
  const unreferenced = stored.filter((hex) => !referenced.has(`sha256:${hex}`));
  assert.deepEqual(unreferenced, [], 'storage holds no byte that nothing references');
  const missing = [...referenced].filter((digest) => !stored.includes(digest.slice('sha256:'.length)));
  assert.deepEqual(missing, [], 'and every byte a manifest names');
}

async function makeLayout(directory: string): Promise<OciLayout> {
  const layout = new OciLayout(directory);
  const image = await layout.addImage({ layers: [{ files: [{ name: 'a.bin', size: 50_000 }] }, { files: [{ name: 'b.bin', size: 60_000 }] }] });
  await layout.tag(image, 'image');
  return layout;
}

function reportOutcome(label: string, outcomes: Outcomes): void {
  process.stdout.write(
    `# ${label}: ${outcomes.pushes} pushes, ${outcomes.refused} refused with MANIFEST_BLOB_UNKNOWN, ${outcomes.collections} collections, ${outcomes.busy} runs that found another holding the lease\n`,
  );
}

describe('garbage collection under load: the filesystem and SQLite, one server and the command line', { skip }, () => {
  let directory: string;
  let server: ServerProcess;
  let setup: StressSetup;
  let layout: OciLayout;
  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-gc-stress-'));
    const root = path.join(directory, 'storage');
    const env = { REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'false' };
    server = await startServerProcess({ root, env });
    layout = await makeLayout(path.join(directory, 'layout'));
    setup = {
      servers: [server],
      // No time machine: manifests a tag moved off are collected at once, so collections race the pushes hard.
      gcEnv: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_AUDIT_TIMEMACHINE: '0s' },
      storedBlobKeys: async () => {
        const { listFiles } = await import('../helpers/test-registry.js');
        return (await listFiles(path.join(root, 'blobs'))).map((file) => `blobs/${file}`);
      },
      referencedDigests: async () => {
        const db = new Database(path.join(root, 'registry.db'), { readonly: true });
        try {
          const rows = db.prepare('select digest from manifest_blobs union select digest from manifests').all() as Array<{ digest: string }>;
          return new Set(rows.map((row) => row.digest));
        } finally {
          db.close();
        }
      },
    };
  });
  after(async () => {
    await server?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('with a grace of 0 s, the re-checked deletes alone: a push may be refused, none succeeds broken', async () => {
    const outcomes = await stress(setup, { graceSeconds: 0, durationMs: 15_000, layout });
    reportOutcome('grace 0 s', outcomes);
    assert.deepEqual(outcomes.unexpected, []);
    assert.ok(outcomes.collections >= 3, `${outcomes.collections} collections ran`);
    await assertNothingUnreferenced(setup);
  });

  it('with a grace of 30 s, touch on use keeps every push working: none fails', async () => {
    const outcomes = await stress(setup, { graceSeconds: 30, durationMs: 15_000, layout });
    reportOutcome('grace 30 s', outcomes);
    assert.deepEqual(outcomes.unexpected, []);
    assert.equal(outcomes.refused, 0);
    await assertNothingUnreferenced(setup);
  });
});

describe('garbage collection under load: S3 and PostgreSQL, two replicas and the command line', { skip: postgresSkip }, () => {
  const bucket = 'gc-stress';
  let directory: string;
  let s3: S3TestServer;
  let drop: () => Promise<void>;
  let databaseUrl: string;
  let replicas: ServerProcess[] = [];
  let setup: StressSetup;
  let layout: OciLayout;
  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-gc-stress-s3-'));
    s3 = await startS3Server();
    await s3.createBucket(bucket);
    const database = await createTestDatabase();
    drop = database.drop;
    databaseUrl = database.url;
    const env = {
      REGISTRY_CONFIG: 'config/s3-postgres.yaml',
      REGISTRY_DATABASE_URL: databaseUrl,
      REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'false',
      ...s3.registryEnv(bucket),
    };
    replicas = await Promise.all([0, 1].map((index) => startServerProcess({ root: path.join(directory, `local-${index}`), env })));
    layout = await makeLayout(path.join(directory, 'layout'));
    setup = {
      servers: replicas,
      gcEnv: { ...env, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'cli'), REGISTRY_AUDIT_TIMEMACHINE: '0s' },
      storedBlobKeys: async () => (await s3.keys(bucket, 'registry/blobs/')).map((key) => key.slice('registry/'.length)),
      referencedDigests: async () => {
        const client = new pg.Client({ connectionString: databaseUrl });
        await client.connect();
        try {
          const { rows } = await client.query<{ digest: string }>('select digest from manifest_blobs union select digest from manifests');
          return new Set(rows.map((row) => row.digest));
        } finally {
          await client.end();
        }
      },
    };
  });
  after(async () => {
    for (const replica of replicas) await replica.stop();
    await drop?.();
    await s3?.dispose();
    await rm(directory, { recursive: true, force: true });
  });

  it('with a grace of 0 s: pushes through both replicas may be refused, none succeeds broken', async () => {
    const outcomes = await stress(setup, { graceSeconds: 0, durationMs: 15_000, layout });
    reportOutcome('S3 + PostgreSQL, grace 0 s', outcomes);
    assert.deepEqual(outcomes.unexpected, []);
    await assertNothingUnreferenced(setup);
  });

  it('with a grace of 30 s: none fails', async () => {
    const outcomes = await stress(setup, { graceSeconds: 30, durationMs: 15_000, layout });
    reportOutcome('S3 + PostgreSQL, grace 30 s', outcomes);
    assert.deepEqual(outcomes.unexpected, []);
    assert.equal(outcomes.refused, 0);
    await assertNothingUnreferenced(setup);
  });
});
