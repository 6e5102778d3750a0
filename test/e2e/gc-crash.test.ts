import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { projectRoot, runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { listFiles } from '../helpers/test-registry.js';
import { missingClients, run } from '../helpers/tools.js';
import { onDisk } from '../helpers/temporary.js';

const skip = missingClients('skopeo');
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Starts `registry gc` and kills it (SIGKILL) as soon as its progress shows the blob sweep under way. */
function killMidSweep(env: Record<string, string>): Promise<{ killedDuringSweep: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(projectRoot, 'dist/src/main.js'), 'gc', '--grace', '0s'], { cwd: projectRoot, env: { PATH: process.env.PATH ?? '', ...env } });
    let output = '';
    let killed = false;
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (!killed && /blobs \[#+-+\]/.test(output)) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('close', () => resolve({ killedDuringSweep: killed, output }));
  });
}

describe('garbage collection killed in the middle of a sweep', { skip }, () => {
  let directory: string;
  let root: string;
  let server: ServerProcess;
  let host: string;
  const live: Array<{ reference: string; image: BlobDescriptor & { layers: BlobDescriptor[]; config: BlobDescriptor } }> = [];
  const garbage: string[] = [];

  before(async () => {
    directory = await mkdtemp(path.join(onDisk('crash consistency'), 'registry-gc-crash-'));
    root = path.join(directory, 'storage');
    server = await startServerProcess({ root, env: { REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: 'false' }, keepLogs: false });
    host = `127.0.0.1:${server.port}`;
    const layout = new OciLayout(path.join(directory, 'layout'));
    for (const [index, name] of ['team/app:v1', 'team/tool:v2'].entries()) {
      const image = await layout.addImage({ layers: [{ files: [{ name: `bin/${index}`, size: 200_000 }] }] });
      await layout.tag(image, `image${index}`);
      await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.directory}:image${index}`, `docker://${host}/${name}`]);
      live.push({ reference: name, image });
    }
    // Three thousand blobs nothing names (monolithic uploads): enough for a sweep of several batches.
    for (let index = 0; index < 3000; index++) {
      const bytes = randomBytes(256);
      const digest = sha256(bytes);
      const response = await fetch(`http://${host}/v2/junk/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: bytes });
      assert.equal(response.status, 201);
      garbage.push(digest);
    }
  });
  after(async () => {
    await server?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('kill -9 mid-sweep, then run again: the job is finished, every live image pulls, nothing unreferenced is left', async () => {
    const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root };
    const killed = await killMidSweep(env);
    assert.ok(killed.killedDuringSweep, `the run was killed while sweeping blobs:\n${killed.output}`);
    const db = new Database(path.join(root, 'registry.db'), { readonly: true });
    const leftBlobs = (db.prepare("select count(*) as n from blobs where digest in (select digest from repository_blobs r join repositories p on p.id = r.repository_id where p.name = 'junk')").get() as { n: number }).n;
    const runs = db.prepare('select state from gc_runs').all() as Array<{ state: string }>;
    db.close();
    assert.ok(leftBlobs > 0 && leftBlobs < garbage.length, `the kill came part way (${garbage.length - leftBlobs} of ${garbage.length} removed)`);
    assert.deepEqual(runs.map((entry) => entry.state), ['running'], 'the killed run did not finish');

    // The API serves nothing broken meanwhile: every live image pulls.
    for (const { reference, image } of live) {
      const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${reference}`]);
      assert.equal(sha256(Buffer.from(raw.stdout)), image.digest);
    }

    // The next run takes over at once (the holder's process is gone) and finishes the job.
    const again = await runRegistryCommand(['gc', '--grace', '0s', '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    const report = JSON.parse(again.stdout) as { blobs: number; leftovers: number; state: string };
    assert.equal(report.state, 'succeeded');
    process.stdout.write(`# killed run removed ${garbage.length - leftBlobs} blobs; the next removed ${report.blobs} and finished ${report.leftovers} deletions left pending\n`);

    const after = new Database(path.join(root, 'registry.db'), { readonly: true });
    try {
      const states = (after.prepare('select state from gc_runs order by id').all() as Array<{ state: string }>).map((entry) => entry.state);
      assert.deepEqual(states, ['failed', 'succeeded'], 'the killed run is marked failed');
      assert.equal((after.prepare('select count(*) as n from gc_pending').get() as { n: number }).n, 0);
      const referenced = new Set((after.prepare('select digest from manifest_blobs union select digest from manifests').all() as Array<{ digest: string }>).map((row) => row.digest));
      const stored = (await listFiles(path.join(root, 'blobs'))).map((file) => `sha256:${file.split('/')[2]}`);
      assert.deepEqual(stored.filter((digest) => !referenced.has(digest)), [], 'no byte nothing references');
      assert.deepEqual([...referenced].filter((digest) => !stored.includes(digest)), [], 'every byte a manifest names');
    } finally {
      after.close();
    }
    // A run of another replica holds the lease: the command line says so and exits 2, changing nothing.
    const writable = new Database(path.join(root, 'registry.db'));
    writable.prepare("insert into gc_lock (name, holder, expires_at) values ('gc', 'replica-b:4242:run', ?)").run(Date.now() + 60_000);
    writable.close();
    const busy = await runRegistryCommand(['gc', '--grace', '0s'], env);
    assert.equal(busy.code, 2, busy.stderr);
    assert.match(busy.stderr, /another garbage collection is running \(replica-b:4242:run\)/);

    for (const { reference, image } of live) {
      const out = path.join(directory, `pulled-${reference.replace(/[/:]/g, '-')}`);
      await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/${reference}`, `oci:${out}:x`]);
      for (const blob of [image.config, ...image.layers]) {
        assert.equal(sha256(await readFile(path.join(out, 'blobs', 'sha256', blob.digest.slice(7)))), blob.digest);
      }
    }
  });
});
